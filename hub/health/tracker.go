package health

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields; the contract's defaults.
const (
	DefaultMaxExchanges   = 1000
	DefaultStaleAfter     = 120 * time.Second
	DefaultLatencyAlertMs = 1000
	// DefaultForgetAfter is the horizon: an exchange without a pong for
	// this long is forgotten. It is the longest statistics window, so
	// nothing a client can ask for is lost with it.
	DefaultForgetAfter = 24 * time.Hour
)

// Config configures a Tracker. Every zero value means the default named
// in its comment; negative values are refused.
type Config struct {
	// MaxExchanges bounds the exchanges tracked; pongs of others are
	// counted in Counts.Untracked. If zero, DefaultMaxExchanges.
	MaxExchanges int
	// StaleAfter is how long without a pong makes an exchange stale; at
	// least a millisecond. If zero, DefaultStaleAfter.
	StaleAfter time.Duration
	// LatencyAlertMs is the latency above which an exchange is slow. If
	// zero, DefaultLatencyAlertMs.
	LatencyAlertMs int
	// ForgetAfter is how long after its last pong a stale exchange is
	// forgotten (see Forget), so that names a publisher made up do not
	// hold MaxExchanges for good; never less than StaleAfter. If zero,
	// DefaultForgetAfter.
	ForgetAfter time.Duration
}

// Tracker keeps every tracked exchange's status, snapshot and rolling
// statistics. It is safe for concurrent use; see the package comment.
type Tracker struct {
	maxExchanges int
	staleMs      int64
	forgetMs     int64
	alertMs      float64
	staleReason  string

	mu     sync.RWMutex
	byName map[string]*exchange
	known  []string // exchanges with a status, sorted
	stale  deadlines
	forget deadlines
	counts Counts
}

// exchange is one tracked exchange. Every field is guarded by the
// Tracker's lock but snapShared, which readers set under the read lock.
type exchange struct {
	name string

	// The timers: where the exchange sits in each heap (-1: not
	// there), when it goes stale, and the newest receive time known of
	// it, by this instance or (merged) by another.
	heapIdx  [numHeaps]int
	deadline int64 // Unix ms
	lastPong int64 // Unix ms; noPeriod before any

	// cur is the transition to the status now; cur.Status is "" until
	// the first. The statistics know the timeline from knownFrom on and
	// have recorded it up to accounted.
	cur       Transition
	knownFrom int64 // Unix ms
	accounted int64 // Unix ms

	// The snapshot. Once snap has been handed to a reader it is never
	// written again (snapShared); until then the next pong reuses it.
	snap       []byte
	snapAt     time.Time
	snapSeq    uint64
	snapShared atomic.Bool

	series series
}

// NewTracker returns an empty Tracker.
func NewTracker(cfg Config) (*Tracker, error) {
	switch {
	case cfg.MaxExchanges < 0:
		return nil, fmt.Errorf("health: MaxExchanges %d: want 0 (default) or more", cfg.MaxExchanges)
	case cfg.StaleAfter < 0 || (cfg.StaleAfter > 0 && cfg.StaleAfter < time.Millisecond):
		return nil, fmt.Errorf("health: StaleAfter %v: want 0 (default) or at least 1ms", cfg.StaleAfter)
	case cfg.LatencyAlertMs < 0:
		return nil, fmt.Errorf("health: LatencyAlertMs %d: want 0 (default) or more", cfg.LatencyAlertMs)
	case cfg.ForgetAfter < 0 || (cfg.ForgetAfter > 0 && cfg.ForgetAfter < time.Millisecond):
		return nil, fmt.Errorf("health: ForgetAfter %v: want 0 (default) or at least 1ms", cfg.ForgetAfter)
	}
	cfg.MaxExchanges = cmp.Or(cfg.MaxExchanges, DefaultMaxExchanges)
	cfg.StaleAfter = cmp.Or(cfg.StaleAfter, DefaultStaleAfter)
	cfg.LatencyAlertMs = cmp.Or(cfg.LatencyAlertMs, DefaultLatencyAlertMs)
	cfg.ForgetAfter = max(cmp.Or(cfg.ForgetAfter, DefaultForgetAfter), cfg.StaleAfter)
	return &Tracker{
		maxExchanges: cfg.MaxExchanges,
		staleMs:      cfg.StaleAfter.Milliseconds(),
		forgetMs:     cfg.ForgetAfter.Milliseconds(),
		alertMs:      float64(cfg.LatencyAlertMs),
		staleReason:  "no pong for " + cfg.StaleAfter.String(),
		byName:       make(map[string]*exchange),
		stale:        deadlines{slot: staleHeap},
		forget:       deadlines{slot: forgetHeap},
	}, nil
}

// Observation is what Observe found.
type Observation struct {
	// Tracked is false for an exchange past MaxExchanges: nothing was
	// kept, but its pongs are to be delivered all the same.
	Tracked bool
	// Changed says the pong changed the exchange's status; Transition
	// is the change, to send to its subscribers.
	Changed    bool
	Transition Transition
	// Seq is the exchange's snapshot sequence after this pong (see
	// Snapshot.Seq).
	Seq uint64
}

// Observe takes one valid pong of exchange (a normalised name), received
// at received, whose envelope is env: it updates the exchange's status,
// statistics, deadline and snapshot. env is copied; the caller may reuse
// it. Call it once per pong, in the order received: a time earlier than
// the exchange's last is taken as that time, so a clock step back cannot
// undo the timeline (its snapshot is still kept only if not older).
//
// In steady state (a tracked exchange whose status stays the same and
// whose snapshot nobody has read since the last pong) it allocates
// nothing.
func (t *Tracker) Observe(exchange string, s Sample, received time.Time, env []byte) Observation {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byName[exchange]
	if e == nil {
		if e = t.addLocked(exchange); e == nil {
			return Observation{}
		}
	}
	return t.observeLocked(e, s, received, env)
}

// observeLocked is Observe of a pong of e, tracked already.
func (t *Tracker) observeLocked(e *exchange, s Sample, received time.Time, env []byte) Observation {
	nowMs := unixMs(received)
	prev := e.cur.Status
	if prev != "" {
		nowMs = max(nowMs, e.accounted)
		t.accountLocked(e, nowMs)
	}
	next := t.judge(s)
	lat, hasLat := s.latency()
	e.series.record(nowMs, lat, hasLat && next != StatusDown)
	e.lastPong = max(e.lastPong, nowMs)
	t.armLocked(e)
	if env != nil && (e.snap == nil || !received.Before(e.snapAt)) {
		e.storeSnapshotLocked(env, received)
	}
	obs := Observation{Tracked: true, Seq: e.snapSeq}
	if next != prev {
		obs.Changed = true
		obs.Transition = Transition{
			Exchange: e.name,
			Status:   next,
			Previous: prev,
			Since:    time.UnixMilli(nowMs),
			Reason:   t.reason(prev, next, s),
		}
		t.setStatusLocked(e, obs.Transition)
	}
	return obs
}

// addLocked starts tracking name, or counts it as untracked and returns
// nil when the bound is reached.
func (t *Tracker) addLocked(name string) *exchange {
	if len(t.byName) >= t.maxExchanges {
		t.counts.Untracked++
		return nil
	}
	// A copy: the name outlives the pong, and a caller may have made it
	// without copying from a buffer it reuses.
	name = strings.Clone(name)
	e := &exchange{name: name, heapIdx: [numHeaps]int{-1, -1}, lastPong: noPeriod}
	e.series.init()
	t.byName[name] = e
	t.counts.Unknown++
	return e
}

// accountLocked records e's timeline up to toMs: the stretch since it
// was last recorded was in e's status, up to its deadline; past the
// deadline it was stale, whether or not Expire has run yet.
func (t *Tracker) accountLocked(e *exchange, toMs int64) {
	if e.cur.Status.available() {
		e.series.addUp(e.accounted, min(toMs, e.deadline))
	}
	e.accounted = max(e.accounted, toMs)
}

// setStatusLocked makes tr e's status.
func (t *Tracker) setStatusLocked(e *exchange, tr Transition) {
	if tr.Previous == "" {
		ms := tr.Since.UnixMilli()
		e.knownFrom, e.accounted = ms, ms
		i, _ := slices.BinarySearch(t.known, e.name)
		t.known = slices.Insert(t.known, i, e.name)
	}
	*t.counts.of(tr.Previous)--
	*t.counts.of(tr.Status)++
	e.cur = tr
}

// Merge offers a snapshot of exchange from elsewhere (the shared Redis
// hash), received by some instance at receivedAt: it replaces the one
// kept only if newer, and reports whether it did. It does not change the
// status (the status comes from pongs), but a newer receive time is a
// pong seen, so it moves the exchange's deadline later; an exchange known
// only from Merge goes stale from "" at its deadline like any other.
// Merge may set an earlier deadline than NextDeadline said.
func (t *Tracker) Merge(exchange string, env []byte, receivedAt time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byName[exchange]
	if e == nil {
		if e = t.addLocked(exchange); e == nil {
			return false
		}
	}
	if ms := unixMs(receivedAt); ms > e.lastPong {
		e.lastPong = ms
		if e.cur.Status != StatusStale {
			t.armLocked(e)
		} else {
			t.forget.set(e, e.lastPong+t.forgetMs) // a pong seen elsewhere: remembered longer
		}
	}
	if e.snap != nil && !receivedAt.After(e.snapAt) {
		return false
	}
	e.storeSnapshotLocked(env, receivedAt)
	return true
}

// Seen reports whether exchange is tracked: a pong of it was observed
// or a snapshot merged. An exchange past MaxExchanges is never seen.
func (t *Tracker) Seen(exchange string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byName[exchange] != nil
}

// Status returns the transition to exchange's status now, for the
// status message after a subscribe; false when the exchange is not
// tracked or has no status yet.
func (t *Tracker) Status(exchange string) (Transition, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.byName[exchange]
	if e == nil || e.cur.Status == "" {
		return Transition{}, false
	}
	return e.cur, true
}

// Stats returns exchange's statistics over window w as of now; false
// when the exchange is not tracked, has no status yet, or w is not a
// window. A now earlier than the exchange's last pong is taken as that.
func (t *Tracker) Stats(exchange string, w Window, now time.Time) (ExchangeStats, bool) {
	if w >= numWindows {
		return ExchangeStats{}, false
	}
	nowMs := unixMs(now)
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.byName[exchange]
	if e == nil || e.cur.Status == "" {
		return ExchangeStats{}, false
	}
	return e.stats(w, nowMs), true
}

func (e *exchange) stats(w Window, nowMs int64) ExchangeStats {
	nowMs = max(nowMs, e.accounted)
	st := ExchangeStats{Status: e.cur.Status, Since: e.cur.Since.UnixMilli()}
	upMs, startMs := e.series.window(w, nowMs, &st)
	if e.cur.Status.available() {
		// The stretch since the last pong, not in the buckets yet.
		from, to := max(e.accounted, startMs), min(nowMs, e.deadline)
		upMs += max(0, to-from)
	}
	known := nowMs - max(startMs, e.knownFrom)
	switch {
	case known > 0:
		st.Availability = min(1, float64(upMs)/float64(known))
	case e.cur.Status.available():
		st.Availability = 1 // the first pong, this very millisecond
	}
	return st
}

// Exchanges appends the names of the exchanges with a status, sorted, to
// dst: the ones Stats answers for.
func (t *Tracker) Exchanges(dst []string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append(dst, t.known...)
}

// Held appends the names of every exchange the Tracker holds, sorted, to
// dst: those with a status and those known only from a merged snapshot
// (what a wildcard subscribe owes a snapshot to).
func (t *Tracker) Held(dst []string) []string {
	t.mu.RLock()
	start := len(dst)
	for name := range t.byName {
		dst = append(dst, name)
	}
	t.mu.RUnlock()
	slices.Sort(dst[start:])
	return dst
}

// Counts returns the gauges: tracked exchanges by status, and the pongs
// left untracked.
func (t *Tracker) Counts() Counts {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.counts
}

// Counts are a Tracker's gauges and its one counter.
type Counts struct {
	Up, Slow, Down, Stale int
	// Unknown is exchanges known only from Merge, with no status yet.
	Unknown int
	// Untracked counts the pongs and merges refused since the start
	// because MaxExchanges exchanges were tracked already.
	Untracked uint64
}

// Of returns the number of exchanges in status s ("" for Unknown).
func (c Counts) Of(s Status) int { return *c.of(s) }

// Tracked is the number of exchanges tracked.
func (c Counts) Tracked() int { return c.Up + c.Slow + c.Down + c.Stale + c.Unknown }

func (c *Counts) of(s Status) *int {
	switch s {
	case StatusUp:
		return &c.Up
	case StatusSlow:
		return &c.Slow
	case StatusDown:
		return &c.Down
	case StatusStale:
		return &c.Stale
	}
	return &c.Unknown
}

// Statuses lists every status, for declaring one gauge each.
var Statuses = []Status{StatusUp, StatusSlow, StatusDown, StatusStale}

// msLimit keeps times within ±35,000 years of 1970, so no sum of a time
// and a duration can overflow.
const msLimit = 1 << 50

func unixMs(t time.Time) int64 { return min(max(t.UnixMilli(), -msLimit), msLimit) }
