package config

import (
	"bytes"
	"strings"
	"testing"
)

// --history-len: 10000 by default, 0 (off) allowed, from the flag or
// PONGCAST_HISTORY_LEN, bad values reported with the others, and listed
// in --help.
func TestHistoryLenSetting(t *testing.T) {
	cfg, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret})
	if err != nil || cfg.HistoryLen != DefaultHistoryLen || DefaultHistoryLen != 10000 {
		t.Fatalf("default: %+v, %v", cfg, err)
	}
	cfg, err = load(t, map[string]string{"PONGCAST_JWT_SECRET": secret, "PONGCAST_HISTORY_LEN": "0"})
	if err != nil || cfg.HistoryLen != 0 {
		t.Fatalf("PONGCAST_HISTORY_LEN=0: %+v, %v", cfg, err)
	}
	cfg, err = load(t, map[string]string{"PONGCAST_JWT_SECRET": secret, "PONGCAST_HISTORY_LEN": "5"}, "--history-len", "500")
	if err != nil || cfg.HistoryLen != 500 {
		t.Fatalf("the flag over the variable: %+v, %v", cfg, err)
	}
	for _, bad := range []string{"-1", "10000001", "lots"} {
		_, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret}, "--history-len", bad, "--client-burst", "0")
		if err == nil || !strings.Contains(err.Error(), "--history-len (PONGCAST_HISTORY_LEN): ") ||
			!strings.Contains(err.Error(), "between 0 (off) and 10000000") || !strings.Contains(err.Error(), "--client-burst") {
			t.Errorf("--history-len %s: %v", bad, err)
		}
	}
	var help bytes.Buffer
	_, _ = Load([]string{"--help"}, func(string) string { return "" }, &help)
	if !strings.Contains(help.String(), "-history-len") || !strings.Contains(help.String(), "PONGCAST_HISTORY_LEN") ||
		!strings.Contains(help.String(), "0 turns history off") {
		t.Errorf("--help:\n%s", help.String())
	}
}
