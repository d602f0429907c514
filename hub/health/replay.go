package health

import "time"

// PastPong is one pong of an exchange's history, for Replay: what
// Observe would have been given when it was received.
type PastPong struct {
	Sample   Sample
	Received time.Time
}

// Replay rebuilds exchange's status, statistics and snapshot from its
// history, past (oldest first), as Observe would have built them had it
// seen those pongs live, with the stale stretches Expire would have
// found between them (a gap longer than StaleAfter makes the exchange
// stale at its deadline, and the next pong revives it). env is the
// envelope of the last one, its snapshot (nil: none). It all happens
// under one hold of the lock, so a concurrent Expire cannot cut in
// between two past pongs and move the timeline to now.
//
// It applies only to an exchange no pong has been observed of yet
// (untracked, or known only from Merge): once a live pong has been
// observed, the live timeline wins and the history is ignored, so no
// pong is counted twice. Call it at start, before the feed delivers; the
// deadline it leaves may have passed, which the next Expire finds.
//
// It reports whether the history was taken; false when the exchange has
// observed a pong already (or is past MaxExchanges, or past is empty),
// so nothing changed. The transitions in between are history: a caller
// tells subscribers of the status and snapshot it leaves (Status,
// Snapshot).
func (t *Tracker) Replay(exchange string, past []PastPong, env []byte) bool {
	if len(past) == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byName[exchange]
	switch {
	case e != nil && e.cur.Status != "":
		return false
	case e == nil:
		if e = t.addLocked(exchange); e == nil {
			return false
		}
	}
	for i, p := range past {
		if e.cur.Status != "" && e.cur.Status != StatusStale && e.heapIdx[staleHeap] >= 0 && e.deadline < unixMs(p.Received) {
			t.stale.remove(e)
			t.staleLocked(e)
		}
		var last []byte
		if i == len(past)-1 {
			last = env
		}
		t.observeLocked(e, p.Sample, p.Received, last)
	}
	return true
}
