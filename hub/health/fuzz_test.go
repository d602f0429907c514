package health

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// FuzzObserve runs sequences of Observe, Merge, Expire (with Forget) and
// Stats, each
// operation three bytes (what, which exchange and sample, how much time
// passes: forwards mostly, backwards now and then), and checks what
// must hold whatever arrives: no panic, the gauges match the statuses,
// transitions really change the status and are reported once, only
// stale exchanges are forgotten, each exchange sits in the one heap its
// status says, every statistic is in range and encodes as JSON.
func FuzzObserve(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0, 1, 10, 1, 0, 200, 2, 0, 255, 3, 0, 0})
	f.Add([]byte{0, 9, 1, 0, 0x42, 1, 0, 0x80, 1, 0, 0xc1, 1, 2, 0, 130, 0, 3, 1, 4, 1, 200})
	f.Add([]byte{1, 2, 0, 0, 2, 0x7f, 2, 0, 0x7f, 2, 0, 0x7f, 0, 2, 5, 3, 3, 3})
	names := []string{"binance", "bybit", "gateio", "kraken", "okx"}
	samples := []Sample{
		connected(45), connected(1450), status("disconnected"), status("error"), {},
		{Latency: 0, HasLatency: true}, connected(19.99), connected(1e9),
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr := newTracker(t, Config{MaxExchanges: 3, StaleAfter: time.Minute, LatencyAlertMs: 500, ForgetAfter: 10 * time.Minute})
		now := t0
		seqs := map[string]uint64{}
		for i := 0; i+3 <= len(ops); i += 3 {
			kind, who, dt := ops[i]%4, ops[i+1], int8(ops[i+2])
			name := names[int(who)%len(names)]
			// Seconds, and backwards by up to 128 s.
			now = now.Add(time.Duration(dt) * time.Second)
			if dt > 100 {
				now = now.Add(time.Duration(dt) * time.Hour / 10)
			}
			switch kind {
			case 0:
				before, had := tr.Status(name)
				obs := tr.Observe(name, samples[int(who/8)%len(samples)], now, envAt(name, now))
				if obs.Changed && (obs.Transition.Status == before.Status || (had && obs.Transition.Previous != before.Status)) {
					t.Fatalf("op %d: transition %+v from %+v", i, obs.Transition, before)
				}
				if obs.Tracked && obs.Seq < seqs[name] {
					t.Fatalf("op %d: Seq went back", i)
				}
				seqs[name] = obs.Seq
			case 1:
				tr.Merge(name, envAt(name, now), now.Add(-time.Duration(who)*time.Second))
			case 2:
				seen := map[string]bool{}
				var last time.Time
				for _, x := range tr.Expire(now) {
					if seen[x.Exchange] || x.Previous == StatusStale || x.Status != StatusStale || x.Since.Before(last) || x.Since.After(now) {
						t.Fatalf("op %d: expired %+v", i, x)
					}
					seen[x.Exchange], last = true, x.Since
				}
				stale := map[string]bool{}
				for _, n := range names {
					st, _ := tr.Status(n)
					stale[n] = st.Status == StatusStale
				}
				for _, n := range tr.Forget(now, nil) {
					if !stale[n] || tr.Seen(n) {
						t.Fatalf("op %d: forgot %s (stale %v), seen after: %v", i, n, stale[n], tr.Seen(n))
					}
					delete(seqs, n) // tracked again, it starts afresh
				}
			case 3:
				checkStats(t, tr, name, now)
			}
			checkCounts(t, tr, names)
			checkHeaps(t, tr)
		}
	})
}

// checkHeaps: an exchange is in the forget heap when stale and in the
// stale heap otherwise, never in both, and each heap's index is right.
func checkHeaps(t *testing.T, tr *Tracker) {
	t.Helper()
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	for name, e := range tr.byName {
		want := staleHeap
		if e.cur.Status == StatusStale {
			want = forgetHeap
		}
		for slot, h := range []*deadlines{&tr.stale, &tr.forget} {
			i := e.heapIdx[slot]
			if in := i >= 0; in != (slot == want) || (in && h.items[i].e != e) {
				t.Fatalf("%s (%q): heap %d index %d", name, e.cur.Status, slot, i)
			}
		}
	}
	if n := len(tr.stale.items) + len(tr.forget.items); n != len(tr.byName) {
		t.Fatalf("%d heap entries for %d exchanges", n, len(tr.byName))
	}
}

func checkStats(t *testing.T, tr *Tracker, name string, now time.Time) {
	t.Helper()
	for _, w := range Windows {
		st, ok := tr.Stats(name, w, now)
		if !ok {
			continue
		}
		if !(st.Availability >= 0 && st.Availability <= 1) {
			t.Fatalf("%s %s: availability %v", name, w, st.Availability)
		}
		if l := st.Latency; l != nil {
			for _, v := range []float64{l.Avg, l.P50, l.P95, l.P99, l.Max} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("%s %s: latency %+v", name, w, l)
				}
			}
			if l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max || l.Avg > l.Max*(1+1e-12) {
				t.Fatalf("%s %s: latency out of order %+v", name, w, l)
			}
		}
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("%s %s: %v", name, w, err)
		}
	}
}

func checkCounts(t *testing.T, tr *Tracker, names []string) {
	t.Helper()
	var want Counts
	for _, name := range names {
		if !tr.Seen(name) {
			continue
		}
		s, _ := tr.Status(name)
		*want.of(s.Status)++
	}
	got := tr.Counts()
	got.Untracked = 0
	if got != want {
		t.Fatalf("counts %+v, statuses say %+v", got, want)
	}
}
