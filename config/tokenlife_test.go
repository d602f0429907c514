package config

import (
	"strings"
	"testing"
	"time"
)

// The token lifecycle's settings: defaults, 0 turning first-message auth
// off, bounds reported like the others.
func TestTokenLifecycleSettings(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": secret}
	cfg, err := load(t, env)
	if err != nil || cfg.AuthTimeout != 5*time.Second || cfg.MaxRevocations != 100_000 {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	env["PONGCAST_AUTH_TIMEOUT"] = "0"
	if cfg, err = load(t, env, "--max-revocations", "10"); err != nil || cfg.AuthTimeout != 0 || cfg.MaxRevocations != 10 {
		t.Fatalf("auth timeout 0: %+v %v", cfg, err)
	}
	_, err = load(t, env, "--auth-timeout", "1ms", "--max-revocations", "0")
	for _, want := range []string{"--auth-timeout (PONGCAST_AUTH_TIMEOUT): must be 0 (off) or between 100ms and 1m, got 1ms",
		"--max-revocations (PONGCAST_MAX_REVOCATIONS): must be between 1 and 10000000, got 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
