package health

import (
	"container/heap"
	"slices"
	"time"
)

// deadlines is one of the Tracker's two timer structures, a min-heap of
// exchanges by a time: the stale heap holds the exchanges that can still
// go stale, by deadline (last pong plus StaleAfter); the forget heap
// holds the stale ones, by when they are forgotten (last pong plus the
// horizon). A pong moves its exchange's deadline later, a fix of
// O(log n); an exchange moves from the one heap to the other when it
// goes stale, and back with its next pong. Guarded by the Tracker's lock.
type deadlines struct {
	slot  int // which of exchange.heapIdx this heap keeps
	items []deadline
}

// The heaps an exchange can be in, by their slot in exchange.heapIdx.
const (
	staleHeap = iota
	forgetHeap
	numHeaps
)

// deadline is one heap entry. It carries its own copy of the time, so a
// sift compares entries side by side instead of chasing a pointer into
// each exchange (14 KiB apart: a cache miss each).
type deadline struct {
	at int64 // Unix ms
	e  *exchange
}

func (d *deadlines) Len() int { return len(d.items) }

func (d *deadlines) Less(i, j int) bool {
	a, b := &d.items[i], &d.items[j]
	if a.at != b.at {
		return a.at < b.at
	}
	return a.e.name < b.e.name // ties in a stable order, for tests and logs
}

func (d *deadlines) Swap(i, j int) {
	d.items[i], d.items[j] = d.items[j], d.items[i]
	d.items[i].e.heapIdx[d.slot] = i
	d.items[j].e.heapIdx[d.slot] = j
}

func (d *deadlines) Push(x any) {
	entry := x.(deadline)
	entry.e.heapIdx[d.slot] = len(d.items)
	d.items = append(d.items, entry)
}

func (d *deadlines) Pop() any {
	last := len(d.items) - 1
	e := d.items[last].e
	d.items[last] = deadline{}
	d.items = d.items[:last]
	e.heapIdx[d.slot] = -1
	return e
}

// set puts e in the heap at time at, or moves it there.
func (d *deadlines) set(e *exchange, at int64) {
	if i := e.heapIdx[d.slot]; i >= 0 {
		d.items[i].at = at
		heap.Fix(d, i)
		return
	}
	heap.Push(d, deadline{at, e})
}

// remove takes e out of the heap, if it is there.
func (d *deadlines) remove(e *exchange) {
	if i := e.heapIdx[d.slot]; i >= 0 {
		heap.Remove(d, i)
	}
}

// popDue removes and returns the first exchange whose time is at or
// before nowMs; nil when there is none.
func (d *deadlines) popDue(nowMs int64) *exchange {
	if len(d.items) == 0 || d.items[0].at > nowMs {
		return nil
	}
	return heap.Pop(d).(*exchange)
}

// next returns the earliest time in the heap; false when it is empty.
func (d *deadlines) next() (time.Time, bool) {
	if len(d.items) == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(d.items[0].at), true
}

// armLocked sets e's deadline from its newest pong and puts e in the
// stale heap, or moves it there. An armed exchange is not stale, so it
// is not to be forgotten either.
func (t *Tracker) armLocked(e *exchange) {
	e.deadline = e.lastPong + t.staleMs
	t.stale.set(e, e.deadline)
	t.forget.remove(e)
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
	return t.stale.next()
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
	for e := t.stale.popDue(nowMs); e != nil; e = t.stale.popDue(nowMs) {
		out = append(out, t.staleLocked(e))
	}
	return out
}

// Forget drops every stale exchange whose last pong (here or merged) is
// ForgetAfter or more before now, and appends their names to dst: the
// Tracker keeps nothing of them, so their slots are free for other
// exchanges, and they are unseen again. Call it after Expire with the
// same now (an exchange not yet made stale is not forgotten). Their
// subscribers were told "stale" at the deadline and are told nothing
// more; their subscriptions are the caller's and stay.
func (t *Tracker) Forget(now time.Time, dst []string) []string {
	nowMs := unixMs(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	start := len(dst)
	for e := t.forget.popDue(nowMs); e != nil; e = t.forget.popDue(nowMs) {
		delete(t.byName, e.name)
		*t.counts.of(e.cur.Status)--
		dst = append(dst, e.name)
	}
	if len(dst) > start {
		// One pass for all of them: a whole flood can age out at once.
		t.known = slices.DeleteFunc(t.known, func(name string) bool { return t.byName[name] == nil })
	}
	return dst
}

// Horizon is how long after its last pong a stale exchange is forgotten:
// ForgetAfter, or StaleAfter if that is longer.
func (t *Tracker) Horizon() time.Duration { return time.Duration(t.forgetMs) * time.Millisecond }

// staleLocked makes e, just taken out of the stale heap, stale at its
// deadline, puts it in the forget heap, and returns the transition.
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
	t.forget.set(e, e.lastPong+t.forgetMs)
	return tr
}
