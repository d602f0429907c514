package hub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol"
)

// snapBase is a receive time the tests count from: a recent one, as a
// value received longer than the horizon ago is deleted from the hash.
var snapBase = time.Now().Truncate(time.Second)

// snapEnv returns the envelope of a pong of exchange received at
// snapBase+ms, with the same data each time but for a tag.
func snapEnv(exchange string, ms int64, tag string) []byte {
	data := []byte(`{"exchange":"` + exchange + `","status":"connected","latency":12,"tag":"` + tag + `"}`)
	return protocol.AppendEnvelope(nil, exchange, data, snapBase.UnixMilli()+ms)
}

// snapValue is what the hash holds for snapEnv's envelope.
func snapValue(exchange string, ms int64, tag string) string {
	return strconv.FormatInt(snapBase.UnixMilli()+ms, 10) + ":" + string(snapEnv(exchange, ms, tag))
}

func snapAt(ms int64) time.Time { return snapBase.Add(time.Duration(ms) * time.Millisecond) }

// snapHash returns a key prefix of the test's own in the Redis at url,
// and a client of its own to look at it with. The hash is deleted when
// the test ends, after every store the test started has stopped.
func snapHash(t *testing.T, url string) (prefix string, admin *redis.Client) {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	admin = redis.NewClient(opts)
	prefix = hubtest.Channel(t) + ":"
	t.Cleanup(func() {
		_ = admin.Del(context.Background(), prefix+snapshotKeySuffix).Err()
		_ = admin.Close()
	})
	return prefix, admin
}

// startSnapStore starts a store, as one instance would, on the hash of
// prefix in the Redis at url; it is stopped when the test ends.
func startSnapStore(t *testing.T, url, prefix string, opts snapshotStoreOptions) *snapshotStore {
	t.Helper()
	s, run := newTestSnapStore(t, url, prefix, opts)
	run()
	return s
}

// newTestSnapStore makes a store; run starts its writer, which is
// stopped when the test ends.
func newTestSnapStore(t testing.TB, url, prefix string, opts snapshotStoreOptions) (s *snapshotStore, run func()) {
	t.Helper()
	ropts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	client := newSnapshotClient(ropts)
	s = newSnapshotStore(client, prefix, opts)
	t.Cleanup(func() { _ = client.Close() })
	return s, func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx)
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
}

// waitForValue waits until the hash holds want for field.
func waitForValue(t *testing.T, admin *redis.Client, key, field, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s = %.100q in %s", field, want, key), func() bool {
		return admin.HGet(context.Background(), key, field).Val() == want
	})
}

func TestSnapshotStoreRoundTrip(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	a := startSnapStore(t, url, prefix, snapshotStoreOptions{})
	if a.Key() != prefix+"snapshots" {
		t.Fatalf("key %q", a.Key())
	}
	env := snapEnv("gateio", 1, "a")
	a.Save("gateio", env, snapAt(1))
	copy(env, "garbage") // Save copied it
	a.Save("binance", snapEnv("binance", 2, "a"), snapAt(2))
	waitForValue(t, admin, a.Key(), "gateio", snapValue("gateio", 1, "a"))
	waitForValue(t, admin, a.Key(), "binance", snapValue("binance", 2, "a"))

	// A fresh instance reads them back.
	b, _ := newTestSnapStore(t, url, prefix, snapshotStoreOptions{})
	got, err := b.LoadAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y StoredSnapshot) int { return strings.Compare(x.Exchange, y.Exchange) })
	want := []StoredSnapshot{
		{"binance", snapEnv("binance", 2, "a"), snapAt(2)},
		{"gateio", snapEnv("gateio", 1, "a"), snapAt(1)},
	}
	if len(got) != len(want) {
		t.Fatalf("loaded %d, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Exchange != want[i].Exchange || string(got[i].Envelope) != string(want[i].Envelope) || !got[i].Received.Equal(want[i].Received) {
			t.Errorf("loaded %s %s %v, want %s %s %v", got[i].Exchange, got[i].Envelope, got[i].Received,
				want[i].Exchange, want[i].Envelope, want[i].Received)
		}
	}
	if c := a.Counts(); c.WritesOK != 2 || c.Stored != 2 || c.WritesFailed != 0 {
		t.Errorf("counts %+v", c)
	}
}

// TestSnapshotStoreNewestWins: two instances write the same exchange out
// of order; the older value does not replace the newer, and on a tie the
// stored value stays.
func TestSnapshotStoreNewestWins(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	a := startSnapStore(t, url, prefix, snapshotStoreOptions{})
	b := startSnapStore(t, url, prefix, snapshotStoreOptions{})

	b.Save("gateio", snapEnv("gateio", 20, "b"), snapAt(20))
	waitForValue(t, admin, b.Key(), "gateio", snapValue("gateio", 20, "b"))
	a.Save("gateio", snapEnv("gateio", 10, "a"), snapAt(10))
	waitFor(t, "a's write", func() bool { return a.Counts().WritesOK == 1 })
	a.Save("gateio", snapEnv("gateio", 20, "a"), snapAt(20)) // the same millisecond
	waitFor(t, "a's second write", func() bool { return a.Counts().WritesOK == 2 })
	if got, _ := admin.HGet(context.Background(), a.Key(), "gateio").Result(); got != snapValue("gateio", 20, "b") {
		t.Fatalf("stored %q, want b's value", got)
	}
	if c := a.Counts(); c.Stored != 0 {
		t.Errorf("a stored %d values over a newer one", c.Stored)
	}
	a.Save("gateio", snapEnv("gateio", 21, "a"), snapAt(21))
	waitForValue(t, admin, a.Key(), "gateio", snapValue("gateio", 21, "a"))
}

// TestSnapshotStoreWritersConverge: two instances save the same
// exchanges concurrently, in random order; the hash ends with the newest
// value of each, whichever instance had it and whenever it was written.
func TestSnapshotStoreWritersConverge(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	stores := []*snapshotStore{
		startSnapStore(t, url, prefix, snapshotStoreOptions{}),
		startSnapStore(t, url, prefix, snapshotStoreOptions{}),
	}
	const exchanges, pongs = 5, 300
	type save struct {
		exchange string
		ms       int64
	}
	var all []save
	for e := range exchanges {
		for ms := range int64(pongs) {
			all = append(all, save{fmt.Sprintf("x%d", e), ms})
		}
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for j := i; j < len(all); j += len(stores) {
				sv := all[j]
				s.Save(sv.exchange, snapEnv(sv.exchange, sv.ms, strconv.Itoa(i)), snapAt(sv.ms))
			}
		})
	}
	wg.Wait()
	for e := range exchanges {
		name := fmt.Sprintf("x%d", e)
		// Which instance saved the newest decides its tag.
		holder := slices.IndexFunc(all, func(sv save) bool { return sv == save{name, pongs - 1} }) % len(stores)
		waitForValue(t, admin, stores[0].Key(), name, snapValue(name, pongs-1, strconv.Itoa(holder)))
	}
	for i, s := range stores {
		waitFor(t, "writers idle", func() bool { return s.pending() == 0 })
		if c := s.Counts(); c.WritesFailed != 0 {
			t.Errorf("store %d: %+v", i, c)
		}
	}
}

// blackHole accepts connections and never answers: a Redis that hangs.
type blackHole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func startBlackHole(t *testing.T) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &blackHole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-h.done
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	return h
}

func (h *blackHole) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// TestSnapshotStoreSaveNeverWaits: while a write hangs, Save returns at
// once, what waits stays within MaxExchanges values, and the hung write
// is counted as failed when it times out.
func TestSnapshotStoreSaveNeverWaits(t *testing.T) {
	hole := startBlackHole(t)
	const maxExchanges = 4
	s := startSnapStore(t, "redis://"+hole.ln.Addr().String()+"/0", hubtest.Channel(t)+":",
		snapshotStoreOptions{MaxExchanges: maxExchanges, WriteTimeout: 2 * time.Second})
	s.Save("x0", snapEnv("x0", 0, ""), snapAt(0))
	waitFor(t, "the write to hang", func() bool { return hole.accepted() > 0 })

	start := time.Now()
	var slowest time.Duration
	for ms := int64(1); ms <= 1000; ms++ {
		for e := range 10 {
			name := "x" + strconv.Itoa(e)
			t0 := time.Now()
			s.Save(name, snapEnv(name, ms, ""), snapAt(ms))
			slowest = max(slowest, time.Since(t0))
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("10000 saves took %v (slowest %v) while a write hung", took, slowest)
	}
	if n := s.pending(); n > maxExchanges {
		t.Errorf("%d values pending, want at most %d", n, maxExchanges)
	}
	c := s.Counts()
	if want := uint64(6 * 1000); c.Dropped["exchanges"] != want {
		t.Errorf("dropped for the exchange bound: %d, want %d", c.Dropped["exchanges"], want)
	}
	waitFor(t, "the hung write to fail", func() bool { return s.Counts().WritesFailed > 0 })
	s.Save("x0", snapEnv("x0", 0, ""), time.Time{})
	s.Save("x0", snapEnv("x0", 0, ""), time.UnixMilli(1e15))
	if n := s.Counts().Dropped["time"]; n != 2 {
		t.Errorf("dropped for the time: %d, want 2", n)
	}
}

// TestSnapshotStoreRedisRestart: with Redis down, saves keep only the
// newest value per exchange, failures are counted, and once Redis is back
// the newest values are written without another save.
func TestSnapshotStoreRedisRestart(t *testing.T) {
	r := hubtest.StartRedis(t)
	prefix, admin := snapHash(t, r.URL())
	s := startSnapStore(t, r.URL(), prefix, snapshotStoreOptions{MaxExchanges: 4, WriteTimeout: 500 * time.Millisecond})
	s.Save("x0", snapEnv("x0", 0, ""), snapAt(0))
	waitForValue(t, admin, s.Key(), "x0", snapValue("x0", 0, ""))

	r.Stop()
	for ms := int64(1); ms <= 50; ms++ {
		for e := range 4 {
			name := "x" + strconv.Itoa(e)
			s.Save(name, snapEnv(name, ms, ""), snapAt(ms))
		}
		if ms == 1 {
			waitFor(t, "a failed write", func() bool { return s.Counts().WritesFailed > 0 })
		}
	}
	if n := s.pending(); n > 4 {
		t.Errorf("%d values pending, want at most 4", n)
	}
	// Two more failed batches: the newest values have failed once at
	// least, and are retried, not given up.
	failed := s.Counts().WritesFailed
	waitFor(t, "the newest values to fail", func() bool { return s.Counts().WritesFailed >= failed+8 })
	r.Start() // empty: it keeps no data
	for e := range 4 {
		name := "x" + strconv.Itoa(e)
		waitForValue(t, admin, s.Key(), name, snapValue(name, 50, ""))
	}
	if c := s.Counts(); c.Dropped["expired"] != 0 {
		t.Errorf("values given up: %+v", c)
	}
}

// TestSnapshotStoreLoadSkipsJunk: LoadAll returns the good fields and
// skips, and counts by reason, every other: what any client of the Redis
// may have written there. A value received longer than the horizon ago
// is deleted from the hash, and counted as forgotten.
func TestSnapshotStoreLoadSkipsJunk(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	s, _ := newTestSnapStore(t, url, prefix, snapshotStoreOptions{MaxMessageBytes: 1024})
	jm := snapBase.UnixMilli() // a time of junk that is not too old to read
	jms := strconv.FormatInt(jm, 10)
	bigEnv := func(n int) string { // an envelope of n bytes
		env := func(pad int) string {
			data := `{"pad":"` + strings.Repeat("p", pad) + `"}`
			return string(protocol.AppendEnvelope(nil, "big", []byte(data), jm))
		}
		return env(n - len(env(0)))
	}
	fields := []struct{ field, value, reason string }{
		{"gateio", snapValue("gateio", 1, "ok"), ""},
		{"binance", snapValue("binance", 2, "ok"), ""},
		{"Bad Name", snapValue("bad", 1, ""), "name"},
		{"GateIO", snapValue("gateio", 9, ""), "name"},
		{strings.Repeat("x", 200), snapValue("x", 1, ""), "name"},
		{"-dash", snapValue("-dash", 1, ""), "name"},
		{"plain", "hello", "value"},
		{"letters", "12a:" + string(snapEnv("letters", 1, "")), "value"},
		{"sixteen", "1234567890123456:{}", "value"},
		{"zero", "0:{}", "deleted"},
		{"yesterday", snapValue("yesterday", -25*time.Hour.Milliseconds(), ""), "deleted"},
		{"dayold", snapValue("dayold", -health.DefaultForgetAfter.Milliseconds()-1, ""), "deleted"},
		{"nocolon", strconv.FormatInt(snapBase.UnixMilli(), 10), "value"},
		{"notjson", jms + ":{nope", "envelope"},
		{"array", jms + ":[1]", "envelope"},
		{"other", jms + ":" + string(protocol.AppendEnvelope(nil, "gateio", []byte(`{}`), jm)), "envelope"},
		{"skew", jms + ":" + string(protocol.AppendEnvelope(nil, "skew", []byte(`{}`), jm+100)), "envelope"},
		{"trailing", jms + ":" + string(protocol.AppendEnvelope(nil, "trailing", []byte(`{}`), jm)) + "x", "envelope"},
		{"notpong", jms + `:{"type":"pong","exchange":"notpong","timestamp":` + jms + `}`, "envelope"},
		{"ahead", "99999999999999:" + string(protocol.AppendEnvelope(nil, "ahead", []byte(`{}`), 99999999999999)), "future"},
		{"big", jms + ":" + bigEnv(1030), "size"},    // past the cap, within what the script lets out
		{"huge", jms + ":" + bigEnv(100000), "size"}, // kept in Redis by the script
	}
	want := map[string]uint64{}
	for _, f := range fields {
		if err := admin.HSet(context.Background(), s.Key(), f.field, f.value).Err(); err != nil {
			t.Fatal(err)
		}
		if f.reason != "" {
			want[f.reason]++
		}
	}
	got, err := s.LoadAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, g.Exchange)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "binance gateio" {
		t.Errorf("loaded %q, want binance and gateio", names)
	}
	for _, r := range snapshotSkipReasons {
		if n := s.Counts().LoadSkipped[r]; n != want[r] {
			t.Errorf("skipped for %s: %d, want %d", r, n, want[r])
		}
	}
	if n := s.Counts().Forgotten; n != want["deleted"] {
		t.Errorf("forgotten %d, want %d", n, want["deleted"])
	}
	for _, f := range fields {
		if kept := admin.HExists(context.Background(), s.Key(), f.field).Val(); kept != (f.reason != "deleted") {
			t.Errorf("field %.20q in the hash after the load: %v", f.field, kept)
		}
	}
}

// TestSnapshotStoreLoadBounds: LoadAll returns at most MaxExchanges
// snapshots, and does not read a hash of junk to its end.
func TestSnapshotStoreLoadBounds(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	ctx := context.Background()
	few, _ := newTestSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 3})
	for e := range 5 {
		name := "x" + strconv.Itoa(e)
		admin.HSet(ctx, few.Key(), name, snapValue(name, int64(e), ""))
	}
	got, err := few.LoadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := few.Counts(); len(got) != 3 || c.LoadSkipped["limit"] != 2 {
		t.Errorf("loaded %d, skipped for the limit %d; want 3 and 2", len(got), c.LoadSkipped["limit"])
	}

	admin.Del(ctx, few.Key())
	const junk = 1000
	pipe := admin.Pipeline()
	for i := range junk {
		pipe.HSet(ctx, few.Key(), "Junk"+strconv.Itoa(i), strings.Repeat("j", 100))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 2})
	got, err = s.LoadAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// HSCAN's COUNT is a hint: how many pages were read depends on the
	// server, but nothing is loaded and every field is counted once.
	if c := s.Counts(); len(got) != 0 || c.LoadSkipped["name"]+c.LoadSkipped["limit"] != junk {
		t.Errorf("loaded %d; skipped %v, want %d in all", len(got), c.LoadSkipped, junk)
	}
}

// TestSnapshotStoreHashBound: no instance adds a field past MaxExchanges,
// but the fields there are still updated; a stored value that is not of
// the format, or says it was received in the far future, is replaced.
func TestSnapshotStoreHashBound(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	ctx := context.Background()
	s := startSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 2})
	admin.HSet(ctx, s.Key(), "a", "junk", "b", "99999999999999:{}")
	s.Save("c", snapEnv("c", 1, ""), snapAt(1))
	waitFor(t, "the write", func() bool { return s.Counts().WritesOK == 1 })
	if c := s.Counts(); c.Dropped["hash_full"] != 1 || admin.HExists(ctx, s.Key(), "c").Val() {
		t.Errorf("a field past the bound: %+v", c)
	}
	s.Save("a", snapEnv("a", 1, ""), snapAt(1))
	waitForValue(t, admin, s.Key(), "a", snapValue("a", 1, ""))
	other := startSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 2})
	other.Save("b", snapEnv("b", 1, ""), snapAt(1))
	waitForValue(t, admin, s.Key(), "b", snapValue("b", 1, ""))
}

// TestSnapshotStoreMetrics: the collector shows the counters under the
// names the README gives.
func TestSnapshotStoreMetrics(t *testing.T) {
	s, _ := newTestSnapStore(t, hubtest.RedisURL(t), hubtest.Channel(t)+":", snapshotStoreOptions{})
	s.Save("x", nil, time.Time{})
	m := NewMetrics(nil)
	m.Registry.MustRegister(s.Collector())
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "pongcast_snapshot_") {
			continue
		}
		for _, mt := range f.GetMetric() {
			name := f.GetName()
			if l := mt.GetLabel(); len(l) > 0 {
				name += "{" + l[0].GetValue() + "}"
			}
			found[name] = mt.GetCounter().GetValue()
		}
	}
	if len(found) != 3+len(snapshotDropReasons)+len(snapshotSkipReasons) ||
		found["pongcast_snapshot_dropped_total{time}"] != 1 || found["pongcast_snapshot_writes_total{ok}"] != 0 {
		t.Errorf("metrics %v", found)
	}
}

func FuzzSnapshotValue(f *testing.F) {
	f.Add(snapValue("gateio", 1, "a"))
	f.Add("1:{}")
	f.Add("0:{}")
	f.Add("123456789012345:x")
	f.Add("1234567890123456:x")
	f.Add(":{}")
	f.Add("12a:{}")
	f.Fuzz(func(t *testing.T, v string) {
		ms, env, ok := parseSnapshotValue(v)
		if !ok {
			return
		}
		if ms <= 0 || ms >= 1e15 {
			t.Fatalf("%q: ms %d", v, ms)
		}
		again := strconv.FormatInt(ms, 10) + ":" + env
		ms2, env2, ok := parseSnapshotValue(again)
		if !ok || ms2 != ms || env2 != env {
			t.Fatalf("%q: round trip %q gives %d %q %v", v, again, ms2, env2, ok)
		}
		_ = isSnapshotEnvelope(env, "gateio", ms)
	})
}

// BenchmarkSnapshotSave is the routing path's cost: one pong's value
// queued, the writer not draining (the worst case: the slot stays dirty).
func BenchmarkSnapshotSave(b *testing.B) {
	s, _ := newTestSnapStore(b, "redis://127.0.0.1:1/0", "bench:", snapshotStoreOptions{})
	env := snapEnv("gateio", 0, "bench")
	ms := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		ms++
		s.Save("gateio", env, snapAt(ms))
	}
}

// BenchmarkSnapshotLoadAll1000 reads a hash of 1000 exchanges' snapshots.
func BenchmarkSnapshotLoadAll1000(b *testing.B) {
	url := hubtest.RedisURL(b)
	prefix := hubtest.Channel(b) + ":"
	s, _ := newTestSnapStore(b, url, prefix, snapshotStoreOptions{})
	ctx := context.Background()
	opts, _ := redis.ParseURL(url)
	admin := redis.NewClient(opts)
	defer admin.Close()
	defer admin.Del(ctx, s.Key())
	pipe := admin.Pipeline()
	for e := range 1000 {
		name := "x" + strconv.Itoa(e)
		pipe.HSet(ctx, s.Key(), name, snapValue(name, int64(e), "bench"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.LoadAll(ctx)
		if err != nil || len(got) != 1000 {
			b.Fatalf("loaded %d: %v", len(got), err)
		}
	}
}

// TestSnapshotStoreSweepsOldWhenFull: a write that finds the hash full
// deletes the values older than the horizon first, so a new exchange
// gets in; it sweeps once a minute at most. A value older than the
// horizon is not written.
func TestSnapshotStoreSweepsOldWhenFull(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	ctx := context.Background()
	s := startSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 2})
	old := -25 * time.Hour.Milliseconds()
	admin.HSet(ctx, s.Key(), "old", snapValue("old", old, ""), "b", snapValue("b", 0, ""))
	s.Save("c", snapEnv("c", 1, ""), snapAt(1))
	waitForValue(t, admin, s.Key(), "c", snapValue("c", 1, ""))
	if admin.HExists(ctx, s.Key(), "old").Val() || !admin.HExists(ctx, s.Key(), "b").Val() {
		t.Errorf("after the sweep: fields %v, want b and c", admin.HKeys(ctx, s.Key()).Val())
	}
	if c := s.Counts(); c.Forgotten != 1 || c.Dropped["hash_full"] != 0 {
		t.Errorf("counts %+v, want one forgotten", c)
	}

	// Within the minute: full, and not swept again.
	admin.HSet(ctx, s.Key(), "old2", snapValue("old2", old, ""))
	s.Save("d", snapEnv("d", 1, ""), snapAt(1))
	waitFor(t, "the write of d", func() bool { return s.Counts().WritesOK == 2 })
	if c := s.Counts(); c.Dropped["hash_full"] != 1 || c.Forgotten != 1 || !admin.HExists(ctx, s.Key(), "old2").Val() {
		t.Errorf("counts %+v, want d refused, old2 kept", c)
	}

	other := startSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 2})
	other.Save("b", snapEnv("b", old, "stale"), snapAt(old))
	waitFor(t, "the write of b", func() bool { return other.Counts().WritesOK == 1 })
	if c := other.Counts(); c.Dropped["old"] != 1 || admin.HGet(ctx, s.Key(), "b").Val() != snapValue("b", 0, "") {
		t.Errorf("counts %+v, want the old value of b not written", c)
	}
}

// TestSnapshotStoreForget: Forget drops an exchange's slot and its
// pending write, so its room goes to another exchange; a slot with a
// value newer than the cutoff stays.
func TestSnapshotStoreForget(t *testing.T) {
	url := hubtest.RedisURL(t)
	prefix, admin := snapHash(t, url)
	s, run := newTestSnapStore(t, url, prefix, snapshotStoreOptions{MaxExchanges: 1})
	s.Save("a", snapEnv("a", 5, ""), snapAt(5))
	s.Forget([]string{"a"}, snapAt(4))
	if s.pending() != 1 {
		t.Fatal("a slot newer than the cutoff was forgotten")
	}
	s.Forget([]string{"a", "never-saved"}, snapAt(5))
	if s.pending() != 0 {
		t.Fatal("the write of a forgotten slot is still pending")
	}
	s.Save("b", snapEnv("b", 6, ""), snapAt(6))
	if c := s.Counts(); s.pending() != 1 || c.Dropped["exchanges"] != 0 {
		t.Fatalf("b after a was forgotten: pending %d, counts %+v", s.pending(), c)
	}
	run()
	waitForValue(t, admin, s.Key(), "b", snapValue("b", 6, ""))
	if admin.HExists(context.Background(), s.Key(), "a").Val() {
		t.Error("a forgotten slot was written")
	}
}
