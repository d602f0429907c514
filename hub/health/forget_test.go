package health

import (
	"slices"
	"testing"
	"time"
)

// TestForget: a stale exchange is forgotten once its last pong is the
// horizon old, and its slot goes to a new exchange; one revived in time,
// or seen elsewhere later (Merge), is kept; the counts follow.
func TestForget(t *testing.T) {
	const horizon = 24 * time.Hour
	tr := newTracker(t, Config{MaxExchanges: 2, StaleAfter: time.Minute})
	observe(tr, "gateio", connected(10), at(0))
	observe(tr, "binance", connected(10), at(time.Hour))
	tr.Expire(at(2 * time.Hour))
	if c := tr.Counts(); c.Stale != 2 {
		t.Fatalf("counts %+v, want both stale", c)
	}
	if got := tr.Forget(at(horizon-time.Millisecond), nil); got != nil {
		t.Fatalf("Forget before the horizon: %q", got)
	}
	if obs := observe(tr, "kraken", connected(10), at(horizon-time.Millisecond)); obs.Tracked {
		t.Fatal("a third exchange tracked past MaxExchanges 2")
	}

	got := tr.Forget(at(horizon), []string{"kept"})
	if !slices.Equal(got, []string{"kept", "gateio"}) {
		t.Fatalf("Forget(24h) = %q, want gateio appended", got)
	}
	if tr.Seen("gateio") {
		t.Error("a forgotten exchange is still seen")
	}
	if _, ok := tr.Status("gateio"); ok {
		t.Error("a forgotten exchange still has a status")
	}
	if _, ok := tr.Snapshot("gateio"); ok {
		t.Error("a forgotten exchange still has a snapshot")
	}
	if _, ok := tr.Stats("gateio", Window24h, at(horizon)); ok {
		t.Error("a forgotten exchange still has statistics")
	}
	if names := tr.Exchanges(nil); !slices.Equal(names, []string{"binance"}) {
		t.Errorf("Exchanges = %q", names)
	}
	if c := tr.Counts(); c.Stale != 1 || c.Tracked() != 1 || c.Untracked != 1 {
		t.Errorf("counts after Forget %+v", c)
	}

	// The freed slot takes a new exchange, which starts afresh.
	obs := observe(tr, "kraken", connected(10), at(horizon+time.Second))
	if !obs.Tracked || !obs.Changed || obs.Transition.Previous != "" {
		t.Fatalf("kraken after the slot was freed: %+v, want tracked with a first status", obs)
	}
	// gateio comes back: new again, but there is no room now.
	if obs := observe(tr, "gateio", connected(10), at(horizon+2*time.Second)); obs.Tracked {
		t.Errorf("gateio tracked again past the bound: %+v", obs)
	}

	// binance is revived before its horizon: it leaves the forget heap.
	observe(tr, "binance", connected(10), at(horizon+30*time.Minute))
	if got := tr.Forget(at(horizon+time.Hour), nil); got != nil {
		t.Errorf("Forget of a revived exchange: %q", got)
	}
	if got := tr.Forget(at(100*horizon), nil); got != nil {
		t.Errorf("Forget with no exchange stale: %q", got)
	}
	// It goes stale again; a later pong seen elsewhere (Merge) moves its
	// horizon on without reviving it.
	tr.Expire(at(horizon + 32*time.Minute))
	tr.Merge("binance", envAt("binance", at(horizon+40*time.Minute)), at(horizon+40*time.Minute))
	if st, _ := tr.Status("binance"); st.Status != StatusStale {
		t.Fatalf("binance %+v after Merge, want still stale", st)
	}
	if got := tr.Forget(at(2*horizon+35*time.Minute), nil); !slices.Equal(got, []string{"kraken"}) {
		t.Errorf("Forget(48h35m) = %q, want kraken alone: binance's merged pong is newer", got)
	}
	if got := tr.Forget(at(2*horizon+40*time.Minute), nil); !slices.Equal(got, []string{"binance"}) {
		t.Errorf("Forget(48h40m) = %q, want binance", got)
	}
	if c := tr.Counts(); c != (Counts{Untracked: 2}) {
		t.Errorf("counts at the end %+v, want nothing tracked", c)
	}
}

// TestForgetMergedOld: a snapshot merged from elsewhere that is past the
// horizon already goes stale and is forgotten at the next Expire and
// Forget; a flood of exchanges ages out all at once.
func TestForgetMergedOld(t *testing.T) {
	tr := newTracker(t, Config{})
	now := at(48 * time.Hour)
	tr.Merge("old", envAt("old", at(0)), at(0))
	tr.Merge("fresh", envAt("fresh", now), now)
	if got := tr.Expire(now); len(got) != 1 || got[0].Exchange != "old" || got[0].Previous != "" {
		t.Fatalf("Expire = %+v, want old stale from no status", got)
	}
	if got := tr.Forget(now, nil); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("Forget = %q, want old", got)
	}
	if !tr.Seen("fresh") || tr.Seen("old") {
		t.Error("fresh should be seen, old not")
	}

	flood := newTracker(t, Config{MaxExchanges: 500, StaleAfter: time.Minute})
	for i := range 500 {
		name := "x" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		observe(flood, name, connected(1), at(time.Duration(i)*time.Millisecond))
	}
	flood.Expire(at(25 * time.Hour))
	if got := flood.Forget(at(25*time.Hour), nil); len(got) != 500 {
		t.Fatalf("forgot %d of the flood, want 500", len(got))
	}
	if c := flood.Counts(); c.Tracked() != 0 || len(flood.Exchanges(nil)) != 0 || len(flood.Held(nil)) != 0 {
		t.Errorf("after the flood aged out: %+v", c)
	}
}
