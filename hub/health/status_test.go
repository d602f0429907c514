package health

import (
	"math"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	tr := newTracker(t, Config{})
	cases := []struct {
		name   string
		sample Sample
		want   Status
	}{
		{"connected, fast", connected(45), StatusUp},
		{"connected, at the threshold", connected(1000), StatusUp},
		{"connected, over the threshold", connected(1000.5), StatusSlow},
		{"connected, no latency", status("connected"), StatusUp},
		{"no status, no latency: a pong is proof of life", Sample{}, StatusUp},
		{"no status, slow", Sample{Latency: 2000, HasLatency: true}, StatusSlow},
		{"no status, fast", Sample{Latency: 3, HasLatency: true}, StatusUp},
		{"latency not present is not read", Sample{Latency: 5000}, StatusUp},
		{"NaN latency counts as none", Sample{Latency: math.NaN(), HasLatency: true}, StatusUp},
		{"disconnected", status("disconnected"), StatusDown},
		{"error", status("error"), StatusDown},
		{"down wins over slow", Sample{Status: "error", Latency: 5000, HasLatency: true}, StatusDown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tr.judge(c.sample); got != c.want {
				t.Errorf("judge(%+v) = %q, want %q", c.sample, got, c.want)
			}
		})
	}
}

// TestStatusSequence walks one exchange through up, slow, up, down, up,
// stale and up again: each change is reported once, with its previous
// status, since and reason, and a pong that changes nothing reports
// nothing.
func TestStatusSequence(t *testing.T) {
	tr := newTracker(t, Config{})
	type step struct {
		at     time.Duration
		sample *Sample // nil: Expire at this time
		want   *Transition
	}
	tx := func(prev, next Status, since time.Duration, reason string) *Transition {
		return &Transition{Exchange: "gateio", Status: next, Previous: prev, Since: at(since), Reason: reason}
	}
	s := func(v Sample) *Sample { return &v }
	steps := []step{
		{0, s(connected(45)), tx("", StatusUp, 0, "pong received")},
		{30 * time.Second, s(connected(50)), nil},
		{60 * time.Second, s(connected(1450)), tx(StatusUp, StatusSlow, 60*time.Second, "latency 1450 ms over 1000 ms")},
		{90 * time.Second, s(connected(1200.25)), nil},
		{120 * time.Second, s(connected(45)), tx(StatusSlow, StatusUp, 120*time.Second, "latency 45 ms within 1000 ms")},
		{150 * time.Second, s(status("disconnected")), tx(StatusUp, StatusDown, 150*time.Second, "status disconnected")},
		{180 * time.Second, s(status("error")), nil},
		{210 * time.Second, s(connected(40)), tx(StatusDown, StatusUp, 210*time.Second, "pong received")},
		{330*time.Second - time.Millisecond, nil, nil},
		{330 * time.Second, nil, tx(StatusUp, StatusStale, 330*time.Second, "no pong for 2m0s")},
		{400 * time.Second, nil, nil},
		{500 * time.Second, s(connected(45)), tx(StatusStale, StatusUp, 500*time.Second, "pong received")},
	}
	for i, st := range steps {
		var got []Transition
		if st.sample == nil {
			got = tr.Expire(at(st.at))
		} else {
			obs := observe(tr, "gateio", *st.sample, at(st.at))
			if !obs.Tracked {
				t.Fatalf("step %d: not tracked", i)
			}
			if obs.Changed {
				got = []Transition{obs.Transition}
			}
		}
		switch {
		case st.want == nil && len(got) > 0:
			t.Errorf("step %d (%v): got %+v, want no transition", i, st.at, got)
		case st.want != nil && (len(got) != 1 || !sameTransition(got[0], *st.want)):
			t.Errorf("step %d (%v): got %+v, want %+v", i, st.at, got, *st.want)
		}
		if cur, ok := tr.Status("gateio"); st.want != nil && (!ok || !sameTransition(cur, *st.want)) {
			t.Errorf("step %d: Status = %+v, %v; want the last transition", i, cur, ok)
		}
		if c := tr.Counts(); c.Tracked() != 1 || c.Unknown != 0 {
			t.Errorf("step %d: counts %+v", i, c)
		}
	}
	if c := tr.Counts(); c.Up != 1 {
		t.Errorf("counts %+v, want one up", c)
	}
}

func sameTransition(a, b Transition) bool {
	return a.Exchange == b.Exchange && a.Status == b.Status && a.Previous == b.Previous &&
		a.Since.Equal(b.Since) && a.Reason == b.Reason
}

func TestReasons(t *testing.T) {
	tr := newTracker(t, Config{LatencyAlertMs: 250, StaleAfter: 90 * time.Second})
	cases := []struct {
		prev, next Status
		sample     Sample
		want       string
	}{
		{"", StatusSlow, connected(1450.04), "latency 1450 ms over 250 ms"},
		{StatusUp, StatusSlow, connected(300.26), "latency 300.3 ms over 250 ms"},
		{StatusSlow, StatusUp, Sample{Latency: 12, HasLatency: true}, "latency 12 ms within 250 ms"},
		{StatusSlow, StatusUp, Sample{}, "pong received"},
		{StatusUp, StatusDown, status("error"), "status error"},
		{StatusStale, StatusUp, connected(1), "pong received"},
	}
	for _, c := range cases {
		if got := tr.reason(c.prev, c.next, c.sample); got != c.want {
			t.Errorf("reason(%q → %q, %+v) = %q, want %q", c.prev, c.next, c.sample, got, c.want)
		}
	}
	if tr.staleReason != "no pong for 1m30s" {
		t.Errorf("stale reason %q", tr.staleReason)
	}
}

func TestNewTrackerConfig(t *testing.T) {
	tr := newTracker(t, Config{})
	if tr.maxExchanges != DefaultMaxExchanges || tr.staleMs != DefaultStaleAfter.Milliseconds() || tr.alertMs != DefaultLatencyAlertMs {
		t.Errorf("defaults not applied: %d %d %v", tr.maxExchanges, tr.staleMs, tr.alertMs)
	}
	if tr.forgetMs != DefaultForgetAfter.Milliseconds() || DefaultForgetAfter != Window24h.Duration() {
		t.Errorf("horizon %d ms, want %v, the longest window", tr.forgetMs, DefaultForgetAfter)
	}
	if tr := newTracker(t, Config{StaleAfter: 48 * time.Hour}); tr.forgetMs != tr.staleMs {
		t.Errorf("horizon %d ms with StaleAfter 48h: want no less than StaleAfter", tr.forgetMs)
	}
	for _, bad := range []Config{
		{MaxExchanges: -1},
		{StaleAfter: -time.Second},
		{StaleAfter: time.Microsecond},
		{LatencyAlertMs: -5},
		{ForgetAfter: -time.Hour},
		{ForgetAfter: time.Microsecond},
	} {
		if _, err := NewTracker(bad); err == nil {
			t.Errorf("NewTracker(%+v): no error", bad)
		}
	}
}

// TestClockBack: a pong stamped before the exchange's last (a clock step
// back) counts at the last time: the timeline never runs backwards, and
// its snapshot does not replace a newer one.
func TestClockBack(t *testing.T) {
	tr := newTracker(t, Config{})
	observe(tr, "gateio", connected(10), at(time.Minute))
	obs := observe(tr, "gateio", status("error"), at(30*time.Second))
	if !obs.Changed || !obs.Transition.Since.Equal(at(time.Minute)) {
		t.Errorf("transition %+v, want since 1m", obs.Transition)
	}
	if s, _ := tr.Snapshot("gateio"); !s.Received.Equal(at(time.Minute)) {
		t.Errorf("snapshot from %v, want the newer one", s.Received)
	}
	if st, _ := tr.Stats("gateio", Window1m, at(time.Minute)); st.Count != 2 {
		t.Errorf("count %d", st.Count)
	}
	if d, _ := tr.NextDeadline(); !d.Equal(at(3 * time.Minute)) {
		t.Errorf("deadline %v", d)
	}
}
