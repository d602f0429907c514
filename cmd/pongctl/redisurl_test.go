package main

import (
	"strings"
	"testing"
)

// TestPublishBadRedisURLHidesPassword: a Redis URL that does not parse is
// refused as a usage error that shows its host, not its password.
func TestPublishBadRedisURLHidesPassword(t *testing.T) {
	code, _, errOut := pongctl(t, nil, "publish", "--exchange", "gateio", "--redis-url", "redis://user:S3cret%zzPw@127.0.0.1:6410/0")
	if code != exitUsage || !strings.Contains(errOut, "redis://127.0.0.1:6410") || strings.Contains(errOut, "S3cret") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
