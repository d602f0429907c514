package main

import (
	"strings"
	"testing"
)

// TestBadRedisURLHidesPassword: the error names the host only.
func TestBadRedisURLHidesPassword(t *testing.T) {
	_, err := newPublisher(&options{redisURL: "redis://user:S3cret%zzPw@127.0.0.1:6410/0"})
	if err == nil || !strings.Contains(err.Error(), "redis://127.0.0.1:6410") || strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("got %v", err)
	}
}
