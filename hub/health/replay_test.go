package health

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// history is a day of pongs of one exchange with what a day brings: slow
// and down stretches, and gaps longer than StaleAfter.
func history() []PastPong {
	var past []PastPong
	tm := at(0)
	for i := range 600 {
		s := connected(float64(20 + i%50))
		switch {
		case i%97 == 0:
			s = status("disconnected")
		case i%31 == 0:
			s = connected(1500) // over the alert threshold: slow
		}
		past = append(past, PastPong{Sample: s, Received: tm})
		step := 45 * time.Second
		switch {
		case i%50 == 49 || i == 590:
			step = 10 * time.Minute // stale in between (and revived near the end)
		case i%7 == 0:
			step = 3 * time.Millisecond // several in a few ms
		}
		tm = tm.Add(step)
	}
	return past
}

// TestReplayEqualsLive: an exchange replayed from its history has the
// statistics, status and snapshot of one that saw the same pongs live,
// with its timer firing in between, in every window.
func TestReplayEqualsLive(t *testing.T) {
	past := history()
	cfg := Config{StaleAfter: 2 * time.Minute, LatencyAlertMs: 1000}
	live, replayed := newTracker(t, cfg), newTracker(t, cfg)
	for _, p := range past {
		live.Expire(p.Received) // the timer, as late as it can be
		live.Observe("gateio", p.Sample, p.Received, envAt("gateio", p.Received))
	}
	last := past[len(past)-1].Received
	if !replayed.Replay("gateio", past, envAt("gateio", last)) {
		t.Fatal("Replay not applied")
	}
	if st, _ := replayed.Status("gateio"); st.Status != StatusUp {
		t.Fatalf("status after Replay %+v, want up", st)
	}
	for _, now := range []time.Time{last, last.Add(time.Minute), last.Add(time.Hour)} {
		live.Expire(now)
		replayed.Expire(now)
		for _, w := range Windows {
			a, okA := live.Stats("gateio", w, now)
			b, okB := replayed.Stats("gateio", w, now)
			if !okA || !okB || !reflect.DeepEqual(a, b) {
				t.Errorf("at %v, %s: live %+v (%v), replayed %+v (%v)", now.Sub(last), w, a, okA, b, okB)
			}
		}
		sa, _ := live.Status("gateio")
		sb, _ := replayed.Status("gateio")
		if sa != sb {
			t.Errorf("at %v: status live %+v, replayed %+v", now.Sub(last), sa, sb)
		}
	}
	snap, ok := replayed.Snapshot("gateio")
	if !ok || !bytes.Equal(snap.Env, envAt("gateio", last)) || !snap.Received.Equal(last) {
		t.Errorf("snapshot after Replay: %s at %v (%v)", snap.Env, snap.Received, ok)
	}
	if c := replayed.Counts(); c.Stale != 1 || c.Tracked() != 1 {
		t.Errorf("counts after Replay and an hour's Expire: %+v, want one stale", c)
	}
}

// TestReplayNeverAfterLive: history is not taken for an exchange that
// has seen a live pong (it would count those pongs twice), and is for
// one known only from a merged snapshot, or not at all.
func TestReplayNeverAfterLive(t *testing.T) {
	tr := newTracker(t, Config{})
	past := []PastPong{{Sample: connected(10), Received: at(0)}, {Sample: connected(12), Received: at(time.Second)}}
	observe(tr, "gateio", connected(30), at(2*time.Second))
	if tr.Replay("gateio", past, nil) {
		t.Error("Replay after a live pong applied, want not")
	}
	if st, _ := tr.Stats("gateio", Window1m, at(3*time.Second)); st.Count != 1 {
		t.Errorf("count after a refused Replay = %d, want the live pong only", st.Count)
	}
	tr.Merge("binance", envAt("binance", at(0)), at(0))
	if !tr.Replay("binance", past, nil) {
		t.Error("Replay of a merged-only exchange not applied")
	}
	if st, _ := tr.Status("binance"); st.Status == "" {
		t.Error("a merged-only exchange has no status after Replay")
	}
	if st, _ := tr.Stats("binance", Window1m, at(3*time.Second)); st.Count != 2 {
		t.Errorf("count after Replay = %d, want 2", st.Count)
	}
	if tr.Replay("okx", nil, nil) {
		t.Error("Replay of no pongs applied, want not")
	}
	full := newTracker(t, Config{MaxExchanges: 1})
	observe(full, "gateio", connected(1), at(0))
	if full.Replay("binance", past, nil) {
		t.Error("Replay past MaxExchanges applied, want not")
	}
}
