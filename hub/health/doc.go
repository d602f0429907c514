// Package health owns what the server knows of each exchange's health,
// built on its pongs: the status (up, slow, down, stale) and its
// transitions, the one timer structure that finds silent exchanges, the
// newest pong of each exchange (the snapshot sent on subscribe), and the
// rolling statistics over 1m, 5m, 1h and 24h.
//
// It is pure state: no sockets, no Redis, no goroutines, no clock. Every
// method that depends on time takes it as an argument, so the caller
// decides what now is (the receive time of a pong, the timer's firing
// time) and tests need no fakes. The caller calls Observe once per valid
// pong on the routing path, runs one timer from NextDeadline to Expire,
// and sends the transitions both return.
//
// Memory is bounded: at most MaxExchanges exchanges are tracked, each of
// a fixed size (time buckets holding small fixed histograms, never
// samples) plus its newest envelope.
// Nothing is held for ever either: an exchange with no pong for the
// horizon (ForgetAfter, 24h by default, the longest window) is forgotten
// by Forget, which the timer calls after Expire, so names a publisher
// made up free their slots a day later.
//
// Concurrency: a Tracker is safe for concurrent use, under one
// sync.RWMutex. Observe, Merge, Expire and Forget take it for writing and do
// O(log n) work (a map lookup, a few buckets, a heap fix, a copy of one
// envelope); the reads (Snapshot, Status, Stats, Seen, Counts) take it
// for reading, each for one exchange at most, so a reader delays the
// routing path by one exchange's window sum at most (about 1.5 µs for
// 24h), never by the statistics of all of them; Exchanges copies the
// sorted names and nothing else.
package health
