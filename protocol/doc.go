// Package protocol owns pongcast's wire format: the messages clients send,
// the messages the server sends, the pong envelope, exchange-name rules and
// the size cap shared by both directions.
//
// It is pure code: no I/O, no goroutines, no package state that changes.
// Every function is safe to call concurrently.
package protocol
