// Package hubtest holds helpers for pongcast's tests: a Redis per test
// (the real one named by PONGCAST_TEST_REDIS_URL, else an embedded one), a
// Redis process a test may stop and restart, tokens signed with a test
// key, and WebSocket clients that read with deadlines.
//
// It is imported only by _test.go files. Every helper fails the test on
// error and registers its own cleanup.
package hubtest
