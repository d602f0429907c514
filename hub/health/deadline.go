package health

import (
	"container/heap"
	"time"
)

// deadlines is the one timer structure for every exchange: a min-heap of
// the exchanges that can still go stale, by deadline (last pong plus
// StaleAfter). A pong moves its exchange's deadline later, a fix of
// O(log n); an exchange leaves the heap when it goes stale and comes
// back with its next pong. Guarded by the Tracker's lock.
type deadlines []deadline

// deadline is one heap entry. It carries its own copy of the time, so a
// sift compares entries side by side instead of chasing a pointer into
// each exchange (14 KiB apart: a cache miss each).
type deadline struct {
	at int64 // Unix ms
	e  *exchange
}

func (d deadlines) Len() int { return len(d) }

func (d deadlines) Less(i, j int) bool {
	if d[i].at != d[j].at {
		return d[i].at < d[j].at
	}
	return d[i].e.name < d[j].e.name // ties in a stable order, for tests and logs
}

func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].e.heapIdx = i
	d[j].e.heapIdx = j
}

func (d *deadlines) Push(x any) {
	e := x.(*exchange)
	e.heapIdx = len(*d)
	*d = append(*d, deadline{e.deadline, e})
}

func (d *deadlines) Pop() any {
	old := *d
	e := old[len(old)-1].e
	old[len(old)-1] = deadline{}
	*d = old[:len(old)-1]
	e.heapIdx = -1
	return e
}

// armLocked sets e's deadline from its newest pong and puts e in the
// heap, or moves it there.
func (t *Tracker) armLocked(e *exchange) {
	e.deadline = e.lastPong + t.staleMs
	if e.heapIdx < 0 {
		heap.Push(&t.deadlines, e)
	} else {
		t.deadlines[e.heapIdx].at = e.deadline
		heap.Fix(&t.deadlines, e.heapIdx)
	}
}

// NextDeadline returns the earliest time an exchange goes stale, and
// false when none can. The caller runs one timer: sleep until then (or
// StaleAfter when there is none), call Expire, repeat. A live pong never
// sets a deadline earlier than the one returned (it is received after
// every pong the deadline came from), so a sleeping timer never needs
// waking for it; Merge can, so ask again after merging.
func (t *Tracker) NextDeadline() (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.deadlines) == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(t.deadlines[0].at), true
}

// Expire makes every exchange whose deadline is at or before now stale
// and returns those transitions in deadline order; nil when none is due.
// Each exchange goes stale once: the next transition it can have is its
// revival by a pong.
func (t *Tracker) Expire(now time.Time) []Transition {
	nowMs := unixMs(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Transition
	for len(t.deadlines) > 0 && t.deadlines[0].at <= nowMs {
		e := heap.Pop(&t.deadlines).(*exchange)
		out = append(out, t.staleLocked(e))
	}
	return out
}

// staleLocked makes e, just taken out of the heap, stale at its deadline
// and returns the transition.
func (t *Tracker) staleLocked(e *exchange) Transition {
	t.accountLocked(e, e.deadline)
	tr := Transition{
		Exchange: e.name,
		Status:   StatusStale,
		Previous: e.cur.Status,
		Since:    time.UnixMilli(e.deadline),
		Reason:   t.staleReason,
	}
	t.setStatusLocked(e, tr)
	return tr
}
