package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (servers, clients, pollers) must be gone
// when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
