package health

import "time"

// Snapshot is the newest pong known of an exchange.
type Snapshot struct {
	// Env is the envelope as it was observed or merged. It is read-only
	// and stays valid: the Tracker never writes to a buffer it has handed
	// out, so it can be queued and shared like any frame.
	Env []byte
	// Received is when the pong was first received, by whichever
	// instance.
	Received time.Time
	// Seq counts the exchange's snapshots: it grows by one each time the
	// snapshot is replaced, and Observe returns the Seq its pong got, so
	// a caller can tell whether a snapshot is older than a live pong it
	// has sent (smaller Seq) or the same one.
	Seq uint64
}

// snapHeadroom is spare capacity in a fresh snapshot buffer, so the next
// pong, a few digits longer, still fits.
const snapHeadroom = 32

// storeSnapshotLocked copies env in as e's snapshot. A buffer no reader
// has been given is overwritten in place (the steady state: no
// allocation); one that has been given out is left to its readers and a
// new one taken, so at most one allocation per pong, and only after a
// read.
func (e *exchange) storeSnapshotLocked(env []byte, received time.Time) {
	if e.snapShared.Load() || cap(e.snap) < len(env) {
		e.snap = make([]byte, len(env), len(env)+snapHeadroom)
		e.snapShared.Store(false)
	} else {
		e.snap = e.snap[:len(env)]
	}
	copy(e.snap, env)
	e.snapAt = received
	e.snapSeq++
}

// Snapshot returns exchange's newest snapshot; false when it has none.
func (t *Tracker) Snapshot(exchange string) (Snapshot, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.byName[exchange]
	if e == nil || e.snap == nil {
		return Snapshot{}, false
	}
	e.snapShared.Store(true)
	return Snapshot{Env: e.snap, Received: e.snapAt, Seq: e.snapSeq}, true
}
