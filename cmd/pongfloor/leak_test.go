package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// Every goroutine a test starts (servers, clients, pollers) must be gone
// when the tests end.
func TestMain(m *testing.M) {
	hubtest.QuietRedisLogs() // as main does
	goleak.VerifyTestMain(m)
}
