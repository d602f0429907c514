package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestBadRedisURLHidesPassword: the usage error names the host only.
func TestBadRedisURLHidesPassword(t *testing.T) {
	err := run(context.Background(), []string{"--redis-url", "redis://user:S3cret%zzPw@127.0.0.1:6410/0"}, io.Discard, nil)
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "redis://127.0.0.1:6410") || strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("got %v", err)
	}
}
