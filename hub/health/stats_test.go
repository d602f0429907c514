package health

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	for _, w := range Windows {
		got, err := ParseWindow(w.String())
		if err != nil || got != w {
			t.Errorf("ParseWindow(%q) = %v, %v", w, got, err)
		}
	}
	durations := map[string]time.Duration{"1m": time.Minute, "5m": 5 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour}
	for _, w := range Windows {
		if w.Duration() != durations[w.String()] {
			t.Errorf("%v.Duration() = %v", w, w.Duration())
		}
	}
	for _, bad := range []string{"", "2m", "5M", "1d", " 1m", "60s"} {
		_, err := ParseWindow(bad)
		if !errors.Is(err, ErrUnknownWindow) || !strings.Contains(err.Error(), "1m, 5m, 1h or 24h") {
			t.Errorf("ParseWindow(%q): %v", bad, err)
		}
	}
	total := 0
	for _, spec := range windows {
		if spec.off != total {
			t.Errorf("window %s starts at %d, want %d", spec.name, spec.off, total)
		}
		total += spec.n
	}
	if total != numBuckets {
		t.Errorf("%d buckets, numBuckets %d", total, numBuckets)
	}
}

// TestLatencyStats: a known latency sequence gives exact count, avg and
// max and percentiles within the contract's error, in every window.
func TestLatencyStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, w := range Windows {
		t.Run(w.String(), func(t *testing.T) {
			tr := newTracker(t, Config{LatencyAlertMs: 1 << 30})
			spec := windows[w]
			// 500 pongs spread over the window's newest n-1 buckets,
			// latencies from 0 to 3 s with a heavy tail.
			span := time.Duration(spec.widthMs*int64(spec.n-1)) * time.Millisecond
			now := at(span)
			var lats []float64
			var sum float64
			for i := range 500 {
				lat := math.Round(math.Exp(rng.Float64()*8)*10) / 10 // 0.1 .. 2981
				if i%50 == 0 {
					lat = 0
				}
				lats = append(lats, lat)
				sum += lat
				observe(tr, "gateio", connected(lat), at(span*time.Duration(i)/500))
			}
			st, ok := tr.Stats("gateio", w, now)
			if !ok || st.Count != 500 || st.Latency == nil {
				t.Fatalf("stats %+v, %v", st, ok)
			}
			slices.Sort(lats)
			// Avg is exact but for the order of the float additions.
			if math.Abs(st.Latency.Avg-sum/500) > 1e-9 || st.Latency.Max != lats[499] {
				t.Errorf("avg %v max %v, want %v and %v", st.Latency.Avg, st.Latency.Max, sum/500, lats[499])
			}
			for _, p := range []struct {
				q   float64
				got float64
			}{{0.50, st.Latency.P50}, {0.95, st.Latency.P95}, {0.99, st.Latency.P99}} {
				want := lats[int(math.Ceil(p.q*500))-1] // nearest rank
				if math.Abs(p.got-want) > max(1, 0.05*want) {
					t.Errorf("p%v = %v, want %v within 5%% or 1 ms", p.q*100, p.got, want)
				}
			}
		})
	}
}

func TestLatencyExactWhenConstant(t *testing.T) {
	tr := newTracker(t, Config{})
	for i := range 10 {
		observe(tr, "gateio", connected(45), at(time.Duration(i)*time.Second))
	}
	st, _ := tr.Stats("gateio", Window1m, at(10*time.Second))
	want := LatencyStats{Avg: 45, P50: 45, P95: 45, P99: 45, Max: 45}
	if st.Latency == nil || *st.Latency != want {
		t.Errorf("latency %+v, want %+v", st.Latency, want)
	}
}

// TestLatencyLeftOut: pongs without a latency, and down pongs, are
// counted but add no latency.
func TestLatencyLeftOut(t *testing.T) {
	tr := newTracker(t, Config{})
	observe(tr, "gateio", Sample{}, at(0))
	observe(tr, "gateio", Sample{Status: "disconnected", Latency: 0, HasLatency: true}, at(time.Second))
	st, _ := tr.Stats("gateio", Window1m, at(2*time.Second))
	if st.Count != 2 || st.Latency != nil {
		t.Errorf("stats %+v, want count 2 and no latency", st)
	}
	observe(tr, "gateio", connected(1e300), at(3*time.Second))
	st, _ = tr.Stats("gateio", Window1m, at(3*time.Second))
	if st.Latency == nil || st.Latency.Max != maxLatencyMs {
		t.Errorf("huge latency: %+v", st.Latency)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

// TestAvailability: a known timeline over the 1h window. At 59m59s the
// window is the buckets from t0: up 0-20m30s (pongs every 30 s to 20m),
// down from 20m30s (pongs to 40m), stale from 42m, up again from 50m.
func TestAvailability(t *testing.T) {
	for _, expire := range []bool{true, false} {
		name := "timer"
		if !expire {
			name = "no timer"
		}
		t.Run(name, func(t *testing.T) {
			tr := newTracker(t, Config{})
			for d := time.Duration(0); d <= 20*time.Minute; d += 30 * time.Second {
				observe(tr, "gateio", connected(50), at(d))
			}
			for d := 20*time.Minute + 30*time.Second; d <= 40*time.Minute; d += 30 * time.Second {
				observe(tr, "gateio", status("disconnected"), at(d))
			}
			if expire {
				if got := tr.Expire(at(45 * time.Minute)); len(got) != 1 || !got[0].Since.Equal(at(42*time.Minute)) {
					t.Fatalf("Expire: %+v", got)
				}
			}
			for d := 50 * time.Minute; d < time.Hour; d += 30 * time.Second {
				observe(tr, "gateio", connected(50), at(d))
			}
			now := at(59*time.Minute + 59*time.Second)
			st, _ := tr.Stats("gateio", Window1h, now)
			up := 20*time.Minute + 30*time.Second + 9*time.Minute + 59*time.Second
			want := up.Seconds() / (59*time.Minute + 59*time.Second).Seconds()
			if math.Abs(st.Availability-want) > 1e-9 {
				t.Errorf("availability %v, want %v", st.Availability, want)
			}
			if st.Count != 41+40+20 {
				t.Errorf("count %d", st.Count)
			}
			// The 5m window (buckets from 55m) has been up throughout.
			if st, _ := tr.Stats("gateio", Window5m, now); st.Availability != 1 {
				t.Errorf("5m availability %v", st.Availability)
			}
		})
	}
}

// TestAvailabilityBeforeFirstPong: the time before an exchange's first
// status is not counted against it; time with no pong since, up to the
// deadline, counts as its last status; after it, as stale.
func TestAvailabilityBeforeFirstPong(t *testing.T) {
	tr := newTracker(t, Config{})
	observe(tr, "gateio", connected(10), at(30*time.Minute))
	if st, _ := tr.Stats("gateio", Window1h, at(31*time.Minute)); st.Availability != 1 {
		t.Errorf("one minute up of a new exchange: availability %v", st.Availability)
	}
	if st, _ := tr.Stats("gateio", Window1h, at(30*time.Minute)); st.Availability != 1 || st.Count != 1 {
		t.Errorf("at the first pong: %+v", st)
	}
	// Silent from 30m: up to 32m, stale after, whether or not the timer ran.
	st, _ := tr.Stats("gateio", Window1h, at(34*time.Minute))
	if want := 0.5; st.Availability != want || st.Status != StatusUp {
		t.Errorf("availability %v status %s, want %v and up (no Expire yet)", st.Availability, st.Status, want)
	}
	tr.Expire(at(34 * time.Minute))
	if st2, _ := tr.Stats("gateio", Window1h, at(34*time.Minute)); st2.Availability != st.Availability || st2.Status != StatusStale {
		t.Errorf("after Expire: %+v, want availability as before", st2)
	}
}

// TestWindowsRoll: old buckets age out of each window in turn.
func TestWindowsRoll(t *testing.T) {
	tr := newTracker(t, Config{})
	for i := range 6 {
		observe(tr, "gateio", connected(100), at(time.Duration(i)*10*time.Second))
	}
	cases := []struct {
		now   time.Duration
		w     Window
		count uint64
	}{
		{55 * time.Second, Window1m, 6},
		{60 * time.Second, Window1m, 5}, // the first 5 s bucket is out
		{2 * time.Minute, Window1m, 0},
		{2 * time.Minute, Window5m, 6},
		{5 * time.Minute, Window5m, 3}, // 0-30 s is out: the pongs at 30, 40, 50 s stay
		{6 * time.Minute, Window5m, 0},
		{6 * time.Minute, Window1h, 6},
		{65 * time.Minute, Window1h, 0},
		{65 * time.Minute, Window24h, 6},
		{24 * time.Hour, Window24h, 0},
	}
	for _, c := range cases {
		st, _ := tr.Stats("gateio", c.w, at(c.now))
		if st.Count != c.count {
			t.Errorf("%s at %v: count %d, want %d", c.w, c.now, st.Count, c.count)
		}
		if (st.Count == 0) != (st.Latency == nil) {
			t.Errorf("%s at %v: latency %+v with count %d", c.w, c.now, st.Latency, st.Count)
		}
	}
	// A pong after a day of silence reuses the ring without old counts.
	observe(tr, "gateio", connected(100), at(25*time.Hour))
	for _, w := range Windows {
		if st, _ := tr.Stats("gateio", w, at(25*time.Hour)); st.Count != 1 {
			t.Errorf("%s after a day: count %d", w, st.Count)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	tr := newTracker(t, Config{})
	observe(tr, "gateio", connected(45), at(0))
	observe(tr, "gateio", connected(45), at(time.Second))
	observe(tr, "binance", Sample{}, at(0))
	for _, c := range []struct{ exchange, want string }{
		{"gateio", `{"count":2,"availability":1,"latency":{"avg":45,"p50":45,"p95":45,"p99":45,"max":45},"status":"up","since":1765738800000}`},
		{"binance", `{"count":1,"availability":1,"latency":null,"status":"up","since":1765738800000}`},
	} {
		st, ok := tr.Stats(c.exchange, Window5m, at(time.Second))
		b, err := json.Marshal(st)
		if !ok || err != nil || string(b) != c.want {
			t.Errorf("%s: %s, %v, %v\nwant %s", c.exchange, b, ok, err, c.want)
		}
	}
	if _, ok := tr.Stats("gateio", Window(9), at(0)); ok {
		t.Error("stats for a window that does not exist")
	}
	if _, ok := tr.Stats("nobody", Window1m, at(0)); ok {
		t.Error("stats for an unknown exchange")
	}
}
