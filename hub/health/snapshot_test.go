package health

import (
	"bytes"
	"testing"
	"time"
)

func TestSnapshotNewestWins(t *testing.T) {
	tr := newTracker(t, Config{})
	if _, ok := tr.Snapshot("gateio"); ok || tr.Seen("gateio") {
		t.Fatal("snapshot of an unseen exchange")
	}
	envA := envAt("gateio", at(time.Minute))
	obs := tr.Observe("gateio", connected(45), at(time.Minute), envA)
	check := func(step string, env []byte, received time.Time, seq uint64) {
		t.Helper()
		s, ok := tr.Snapshot("gateio")
		if !ok || !bytes.Equal(s.Env, env) || !s.Received.Equal(received) || s.Seq != seq {
			t.Errorf("%s: snapshot %q at %v seq %d, %v; want %q at %v seq %d", step, s.Env, s.Received, s.Seq, ok, env, received, seq)
		}
	}
	check("observed", envA, at(time.Minute), obs.Seq)
	if obs.Seq != 1 {
		t.Errorf("first Seq = %d", obs.Seq)
	}

	if tr.Merge("gateio", []byte(`older`), at(30*time.Second)) {
		t.Error("Merge of an older snapshot replaced it")
	}
	if tr.Merge("gateio", []byte(`same time`), at(time.Minute)) {
		t.Error("Merge of a snapshot as old replaced it")
	}
	check("older merged", envA, at(time.Minute), 1)

	if !tr.Merge("gateio", []byte(`newer`), at(2*time.Minute)) {
		t.Error("Merge of a newer snapshot did not replace it")
	}
	check("newer merged", []byte(`newer`), at(2*time.Minute), 2)

	// A live pong older than the merged one (another instance got it
	// later) leaves the snapshot alone, though it counts as a pong.
	obs = tr.Observe("gateio", connected(45), at(90*time.Second), []byte(`live but older`))
	if obs.Seq != 2 {
		t.Errorf("Seq after an older live pong = %d, want 2", obs.Seq)
	}
	check("older live", []byte(`newer`), at(2*time.Minute), 2)
	if st, _ := tr.Stats("gateio", Window5m, at(3*time.Minute)); st.Count != 2 {
		t.Errorf("count %d, want 2", st.Count)
	}

	// The merged receive time is a pong seen: the deadline is 2m after it.
	if d, _ := tr.NextDeadline(); !d.Equal(at(4 * time.Minute)) {
		t.Errorf("deadline %v, want 4m", d)
	}
}

// TestMergeOnly: an exchange known only from Merge is seen, has a
// snapshot but no status or statistics, and goes stale from "" unless a
// pong comes.
func TestMergeOnly(t *testing.T) {
	tr := newTracker(t, Config{})
	tr.Merge("gateio", []byte(`g`), at(0))
	tr.Merge("binance", []byte(`b`), at(0))
	if !tr.Seen("gateio") {
		t.Error("not seen")
	}
	if _, ok := tr.Status("gateio"); ok {
		t.Error("status of a merged-only exchange")
	}
	if _, ok := tr.Stats("gateio", Window1m, at(0)); ok {
		t.Error("stats of a merged-only exchange")
	}
	if got := tr.Exchanges(nil); len(got) != 0 {
		t.Errorf("Exchanges = %v", got)
	}
	if c := tr.Counts(); c.Unknown != 2 || c.Tracked() != 2 {
		t.Errorf("counts %+v", c)
	}

	obs := observe(tr, "binance", connected(1), at(time.Minute))
	if !obs.Changed || obs.Transition.Previous != "" || obs.Transition.Status != StatusUp {
		t.Errorf("first pong: %+v", obs)
	}
	got := tr.Expire(at(2 * time.Minute))
	if len(got) != 1 || got[0].Exchange != "gateio" || got[0].Previous != "" || got[0].Status != StatusStale {
		t.Errorf("Expire: %+v", got)
	}
	if got := tr.Exchanges(nil); len(got) != 2 || got[0] != "binance" || got[1] != "gateio" {
		t.Errorf("Exchanges = %v", got)
	}
	st, ok := tr.Stats("gateio", Window1m, at(150*time.Second))
	if !ok || st.Availability != 0 || st.Status != StatusStale || st.Since != at(2*time.Minute).UnixMilli() {
		t.Errorf("stats %+v, %v", st, ok)
	}
	// A stale exchange's deadline does not come back with a merge.
	tr.Merge("gateio", []byte(`g2`), at(150*time.Second))
	if got := tr.Expire(at(time.Hour)); len(got) != 1 || got[0].Exchange != "binance" {
		t.Errorf("Expire after merging into a stale exchange: %+v", got)
	}
}

// TestSnapshotOwnership: bytes handed to a reader never change; until
// someone reads, pongs reuse the one buffer.
func TestSnapshotOwnership(t *testing.T) {
	tr := newTracker(t, Config{})
	buf := []byte(`{"n":1}`)
	tr.Observe("gateio", Sample{}, at(0), buf)
	buf[6] = '9' // the caller reuses its buffer
	s1, _ := tr.Snapshot("gateio")
	if string(s1.Env) != `{"n":1}` {
		t.Fatalf("snapshot %q: not a copy", s1.Env)
	}
	tr.Observe("gateio", Sample{}, at(time.Second), []byte(`{"n":2}`))
	if string(s1.Env) != `{"n":1}` {
		t.Errorf("a read snapshot changed to %q", s1.Env)
	}
	s2, _ := tr.Snapshot("gateio")
	if string(s2.Env) != `{"n":2}` || s2.Seq != 2 {
		t.Errorf("second snapshot %q seq %d", s2.Env, s2.Seq)
	}

	env := []byte(`{"n":3}`)
	var n int64
	allocs := testing.AllocsPerRun(100, func() {
		n++
		tr.Observe("gateio", Sample{}, at(time.Duration(n)*time.Second), env)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per unread pong, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		n++
		tr.Observe("gateio", Sample{}, at(time.Duration(n)*time.Second), env)
		tr.Snapshot("gateio")
	})
	if allocs != 1 {
		t.Errorf("%v allocations per pong read, want 1", allocs)
	}
}
