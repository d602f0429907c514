package health

import (
	"testing"
	"time"
)

// TestExpireOrder: exchanges go stale in deadline order, each once; a
// pong moves a deadline later; NextDeadline follows.
func TestExpireOrder(t *testing.T) {
	tr := newTracker(t, Config{StaleAfter: time.Minute})
	if _, ok := tr.NextDeadline(); ok {
		t.Fatal("NextDeadline on an empty tracker")
	}
	// Last pongs: binance 0s, gateio 10s, kraken 20s, okx 20s (a tie,
	// broken by name), bybit 5s then again at 30s.
	observe(tr, "binance", connected(10), at(0))
	observe(tr, "bybit", connected(10), at(5*time.Second))
	observe(tr, "gateio", status("disconnected"), at(10*time.Second))
	observe(tr, "okx", connected(10), at(20*time.Second))
	observe(tr, "kraken", connected(5000), at(20*time.Second))
	if d, _ := tr.NextDeadline(); !d.Equal(at(time.Minute)) {
		t.Fatalf("NextDeadline = %v, want binance's at 1m", d)
	}
	observe(tr, "bybit", connected(10), at(30*time.Second))

	if got := tr.Expire(at(59 * time.Second)); got != nil {
		t.Fatalf("Expire before any deadline: %+v", got)
	}
	got := tr.Expire(at(80 * time.Second))
	want := []struct {
		exchange string
		prev     Status
		since    time.Duration
	}{
		{"binance", StatusUp, 60 * time.Second},
		{"gateio", StatusDown, 70 * time.Second},
		{"kraken", StatusSlow, 80 * time.Second},
		{"okx", StatusUp, 80 * time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("Expire(80s) = %+v, want %d transitions", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Exchange != w.exchange || g.Previous != w.prev || g.Status != StatusStale || !g.Since.Equal(at(w.since)) || g.Reason != "no pong for 1m0s" {
			t.Errorf("transition %d = %+v, want %s %s → stale since %v", i, g, w.exchange, w.prev, w.since)
		}
	}
	if got := tr.Expire(at(85 * time.Second)); got != nil {
		t.Errorf("Expire again: %+v, want nothing", got)
	}
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(90*time.Second)) {
		t.Errorf("NextDeadline = %v, %v, want bybit's at 90s", d, ok)
	}
	if c := tr.Counts(); c.Stale != 4 || c.Up != 1 {
		t.Errorf("counts %+v", c)
	}

	// A pong revives; the exchange can go stale again, once.
	obs := observe(tr, "gateio", connected(10), at(100*time.Second))
	if !obs.Changed || obs.Transition.Previous != StatusStale || obs.Transition.Status != StatusUp {
		t.Errorf("revival: %+v", obs)
	}
	got = tr.Expire(at(10 * time.Minute))
	if len(got) != 2 || got[0].Exchange != "bybit" || got[1].Exchange != "gateio" || got[1].Previous != StatusUp {
		t.Errorf("second round: %+v", got)
	}
	if _, ok := tr.NextDeadline(); ok {
		t.Error("NextDeadline with everything stale")
	}
}

// TestExpireLate: a timer that fires late still dates staleness from
// the deadline, and a pong that comes past the deadline before Expire
// has run keeps the exchange from going stale at all.
func TestExpireLate(t *testing.T) {
	tr := newTracker(t, Config{})
	observe(tr, "gateio", connected(10), at(0))
	got := tr.Expire(at(time.Hour))
	if len(got) != 1 || !got[0].Since.Equal(at(2*time.Minute)) {
		t.Errorf("late Expire: %+v, want since 2m", got)
	}

	observe(tr, "binance", connected(10), at(0))
	if obs := observe(tr, "binance", connected(10), at(3*time.Minute)); obs.Changed {
		t.Errorf("pong past an unexpired deadline: %+v", obs)
	}
	if got := tr.Expire(at(4 * time.Minute)); got != nil {
		t.Errorf("Expire after the pong: %+v", got)
	}
}
