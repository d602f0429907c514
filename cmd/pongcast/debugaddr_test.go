package main

import (
	"strings"
	"testing"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// A profiler reachable from other machines is worth a warning; one on
// loopback is not.
func TestDebugAddrBeyondLoopbackWarns(t *testing.T) {
	const warning = "the profiler listens beyond this machine"
	for _, tc := range []struct {
		addr string
		warn bool
	}{{"127.0.0.1:0", false}, {"0.0.0.0:0", true}} {
		s := startServer(t, hubtest.RedisURL(t), "--debug-addr", tc.addr)
		s.shutdown()
		if got := strings.Contains(s.logs.String(), warning); got != tc.warn {
			t.Errorf("--debug-addr %s: warned %v, want %v; log:\n%s", tc.addr, got, tc.warn, s.logs)
		}
	}
}
