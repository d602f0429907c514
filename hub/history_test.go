package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol"
)

// newRedisTestServer is newRedisServer's testServer, for tests that
// publish in process or through a store of their own.
func newRedisTestServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	return newRedisServer(t, opts).testServer
}

// dropKeys deletes the keys under prefix when the test ends (after the
// servers it started stop), so a shared Redis does not fill with them.
func dropKeys(t testing.TB, url, prefix string) {
	admin := adminClient(t, url)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := admin.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			_ = admin.Del(ctx, iter.Val()).Err()
		}
	})
}

// testHistoryStore is a history store on a client of its own to the
// Redis at url, under prefix (emptied when the test ends), counting in
// metrics of its own, its writer not running.
func testHistoryStore(t testing.TB, url, prefix string, maxLen int) *historyStore {
	t.Helper()
	dropKeys(t, url, prefix)
	ropts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := newHistoryClient(ropts, historyQueryPool)
	t.Cleanup(func() { _ = c.Close() })
	return newHistoryStore(c, c, prefix, maxLen, protocol.DefaultMaxMessageBytes,
		slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil))
}

// adminClient is a Redis client of the test's own, for looking at keys.
func adminClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitXLen waits until the stream holds n entries.
func waitXLen(t *testing.T, admin *redis.Client, key string, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d entries in %s", n, key), func() bool {
		return admin.XLen(context.Background(), key).Val() >= n
	})
	if got := admin.XLen(context.Background(), key).Val(); got != n {
		t.Fatalf("%s holds %d entries, want %d", key, got, n)
	}
}

// historyReply is a history reply (message or HTTP body).
type historyReply struct {
	Type     string            `json:"type"`
	Exchange string            `json:"exchange"`
	Pongs    []json.RawMessage `json:"pongs"`
	More     bool              `json:"more"`
	Cursor   string            `json:"cursor"`
	ID       json.RawMessage   `json:"id"`
}

// askHistory sends a history message and reads the reply.
func askHistory(t *testing.T, c *hubtest.Client, req map[string]any) historyReply {
	t.Helper()
	req["type"] = "history"
	c.Send(req)
	m := c.Read()
	var r historyReply
	if err := json.Unmarshal(m.Raw, &r); err != nil || r.Type != "history" {
		t.Fatalf("history reply %s (%v)", m.Raw, err)
	}
	return r
}

// pageAll reads every page, following the cursor, and checks each reply
// against the cap.
func pageAll(t *testing.T, c *hubtest.Client, req map[string]any, maxBytes int) [][]byte {
	t.Helper()
	var out [][]byte
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		q := map[string]any{}
		for k, v := range req {
			q[k] = v
		}
		req["type"] = "history"
		c.Send(req)
		m := c.Read()
		if len(m.Raw) > maxBytes {
			t.Fatalf("a history reply of %d bytes passes the %d cap", len(m.Raw), maxBytes)
		}
		var r historyReply
		if err := json.Unmarshal(m.Raw, &r); err != nil || r.Type != "history" {
			t.Fatalf("history reply %s (%v)", m.Raw, err)
		}
		for _, p := range r.Pongs {
			out = append(out, p)
		}
		if !r.More {
			return out
		}
		if r.Cursor == "" || len(r.Pongs) == 0 {
			t.Fatalf("more without pongs or cursor: %s", m.Raw)
		}
		req = q
		delete(req, "since")
		req["after"] = r.Cursor
	}
}

// routesThePast lets s's history writer write pongs routed as if
// received long ago (routeAt), which it would leave out as late. Called
// before any pong is routed: Run reads it for the first one it takes.
func routesThePast(s *testServer) { s.history.maxAge = 1 << 62 }

// routeAt routes payloads as if received at tm, several in one ms.
func (s *testServer) routeAt(t *testing.T, tm time.Time, payloads ...string) [][]byte {
	t.Helper()
	var envs [][]byte
	for _, p := range payloads {
		if err := s.route([]byte(p), tm); err != nil {
			t.Fatal(err)
		}
		// The envelope the live clients got, as the stream must hold it.
		var pong struct{ Exchange string }
		_ = json.Unmarshal([]byte(p), &pong)
		envs = append(envs, []byte(fmt.Sprintf(`{"type":"exchange:pong","exchange":%q,"data":%s,"timestamp":%d,"source":"exchange"}`,
			pong.Exchange, p, tm.UnixMilli())))
	}
	return envs
}

func pongsEqual(got [][]byte, want [][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			return false
		}
	}
	return true
}

// TestHistoryPaging: pongs come back oldest first, byte for byte, paged
// by the cursor without a miss or a repeat however many share a ms and
// however small the page (limit 1, the message cap); since and until
// bound them inclusive; bad requests, forbidden and unknown exchanges get
// the usual answers, by message and by HTTP.
func TestHistoryPaging(t *testing.T) {
	const maxBytes = 1024
	s := newRedisTestServer(t, Options{MaxMessageBytes: maxBytes, MaxSubscriptions: 5, ClientRate: 1000, ClientBurst: 1000})
	routesThePast(s)
	admin := adminClient(t, s.opts.RedisURL)
	base := time.Now().Truncate(time.Millisecond).Add(-time.Minute)
	pad := strings.Repeat("x", 200) // three envelopes fill a reply
	payload := func(i int) string {
		return fmt.Sprintf(`{"exchange":"gateio", "latency":%d,"pad":"%s <&>"}`, i, pad)
	}
	var want [][]byte
	n := 0
	for _, step := range []struct {
		at    time.Duration
		count int
	}{{0, 3}, {time.Millisecond, 2}, {5 * time.Millisecond, 4}, {5 * time.Millisecond, 1}} {
		var ps []string
		for range step.count {
			ps = append(ps, payload(n))
			n++
		}
		want = append(want, s.routeAt(t, base.Add(step.at), ps...)...)
	}
	waitXLen(t, admin, s.history.StreamKey("gateio"), int64(n))

	c := s.dial(t, "", "gateio", "kraken")
	for _, limit := range []int{1, 2, 1000} {
		got := pageAll(t, c, map[string]any{"exchange": "GateIO", "limit": limit}, maxBytes)
		if !pongsEqual(got, want) {
			t.Fatalf("limit %d: %d pongs\n%s\nwant %d\n%s", limit, len(got), bytes.Join(got, []byte("\n")), len(want), bytes.Join(want, []byte("\n")))
		}
	}
	ms := base.Add(time.Millisecond).UnixMilli()
	if r := askHistory(t, c, map[string]any{"exchange": "gateio", "since": ms, "until": ms, "id": 7}); len(r.Pongs) != 2 || r.More ||
		!bytes.Equal(r.Pongs[0], want[3]) || !bytes.Equal(r.Pongs[1], want[4]) || string(r.ID) != "7" {
		t.Errorf("since = until = the second ms: %+v, want its two pongs", r)
	}
	r := askHistory(t, c, map[string]any{"exchange": "gateio", "limit": 1})
	if len(r.Pongs) != 1 || !r.More || r.Cursor != fmt.Sprintf("%d-0", base.UnixMilli()) {
		t.Errorf("limit 1: %+v, want the first pong, more, its cursor", r)
	}
	if r := askHistory(t, c, map[string]any{"exchange": "kraken"}); len(r.Pongs) != 0 || r.More || r.Cursor != "" {
		t.Errorf("an exchange without history: %+v, want no pongs", r)
	}
	for _, tc := range []struct {
		req  map[string]any
		code string
	}{
		{map[string]any{"exchange": "gateio", "since": 10, "until": 9}, "bad_request"},
		{map[string]any{"exchange": "gateio", "limit": 1001}, "bad_request"},
		{map[string]any{"exchange": "*"}, "bad_request"},
		{map[string]any{"exchange": "binance"}, "forbidden"},
	} {
		tc.req["type"] = "history"
		c.Send(tc.req)
		if m := c.ReadType("error"); m.Code != tc.code {
			t.Errorf("%v: %s, want %s", tc.req, m.Raw, tc.code)
		}
	}

	// HTTP: the same pongs, pages of up to 1000, no cap but the limit.
	tok := hubtest.Token(t, "h", time.Hour, "gateio", "kraken")
	var got [][]byte
	after := ""
	for pages := 0; pages < 100; pages++ {
		var body historyReply
		url := s.url + "/v1/exchanges/gateio/history?limit=4"
		if after != "" {
			url += "&after=" + after
		}
		resp := getInto(t, url, tok, &body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || body.Exchange != "gateio" || body.Type != "" {
			t.Fatalf("GET %s: %s %+v", url, resp.Status, body)
		}
		for _, p := range body.Pongs {
			got = append(got, p)
		}
		if !body.More {
			break
		}
		after = body.Cursor
	}
	if !pongsEqual(got, want) {
		t.Fatalf("HTTP pages: %d pongs, want %d", len(got), len(want))
	}
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/v1/exchanges/gateio/history", "", http.StatusUnauthorized},
		{"/v1/exchanges/binance/history", tok, http.StatusForbidden},
		{"/v1/exchanges/kraken/history", tok, http.StatusNotFound},
		{"/v1/exchanges/gateio/history?since=10&until=9", tok, http.StatusBadRequest},
		{"/v1/exchanges/gateio/history?limit=1001", tok, http.StatusBadRequest},
		{"/v1/exchanges/gateio/history?since=x", tok, http.StatusBadRequest},
		{"/v1/exchanges/gateio/history?after=1-2-3", tok, http.StatusBadRequest},
		{"/v1/exchanges/-gateio/history", tok, http.StatusBadRequest},
	} {
		var body map[string]any
		if resp := getInto(t, s.url+tc.path, tc.token, &body); resp.StatusCode != tc.status {
			t.Errorf("GET %s: %s %v, want %d", tc.path, resp.Status, body, tc.status)
		}
	}
}

// TestHistoryWriteFailure: with Redis down, pongs are still delivered
// live; their history writes are counted as failed, not retried, not
// held; a history request says Redis is unavailable. Writes resume with
// Redis.
func TestHistoryWriteFailure(t *testing.T) {
	r := hubtest.StartRedis(t)
	s := newRedisTestServer(t, Options{RedisURL: r.URL()})
	c := s.dial(t, "exchanges=gateio", "gateio")
	c.ReadType("subscribed")
	failed := s.metrics.HistoryWrites.WithLabelValues("failed")
	r.Stop()
	const n = 20
	for i := range n {
		s.publish(t, "gateio", i)
		if m := c.ReadType("exchange:pong"); latencyOf(t, m) != i {
			t.Fatalf("live pong %s, want latency %d", m.Raw, i)
		}
	}
	waitFor(t, "the writes counted as failed", func() bool { return testCounter(failed) == n })
	if ok := testCounter(s.metrics.HistoryWrites.WithLabelValues("ok")); ok != 0 {
		t.Errorf("%v writes ok with Redis down", ok)
	}
	if m := askHistoryError(t, c, "gateio"); m.Code != "unavailable" || m.Message != "history unavailable: Redis did not answer in time; retry later" {
		t.Errorf("history with Redis down: %s, want unavailable, without the Redis address", m.Raw)
	}
	var body map[string]string
	resp := getInto(t, s.url+"/v1/exchanges/gateio/history", hubtest.Token(t, "h", time.Hour, "gateio"), &body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || body["error"] != "unavailable" ||
		strings.Contains(body["message"], "127.0.0.1") {
		t.Errorf("GET history with Redis down: %s %v %v", resp.Status, resp.Header, body)
	}
	r.Start()
	admin := adminClient(t, r.URL())
	key := s.history.StreamKey("gateio")
	waitFor(t, "a write after Redis came back", func() bool {
		s.publish(t, "gateio", 99)
		return admin.XLen(context.Background(), key).Val() > 0
	})
}

func askHistoryError(t *testing.T, c *hubtest.Client, exchange string) hubtest.Message {
	t.Helper()
	c.Send(map[string]any{"type": "history", "exchange": exchange})
	return c.ReadType("error")
}

// TestHistoryOff: --history-len 0 writes nothing and says so to a
// history request.
func TestHistoryOff(t *testing.T) {
	s := newRedisTestServer(t, Options{HistoryLen: -1})
	c := s.dial(t, "", "gateio")
	s.publish(t, "gateio", 1)
	if m := askHistoryError(t, c, "gateio"); m.Code != "unavailable" || !strings.Contains(m.Message, "history is off") {
		t.Errorf("history when off: %s", m.Raw)
	}
	if n := testCounter(s.metrics.HistoryWrites.WithLabelValues("ok")); n != 0 || s.history != nil {
		t.Errorf("history off: %v writes", n)
	}
	plain := newTestServer(t, Options{})
	if m := askHistoryError(t, plain.dial(t, "", "gateio"), "gateio"); m.Code != "unavailable" || !strings.Contains(m.Message, "no Redis") {
		t.Errorf("history without Redis: %s", m.Raw)
	}
}

// TestStatsRebuiltFromHistory: a server started on the Redis of one that
// saw three hours of pongs has, from the history, the same statistics in
// every window, and the same status.
func TestStatsRebuiltFromHistory(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	// No exchange goes stale while its past is routed: the timer would
	// move its timeline to now, as no live pong can (health's own test
	// covers replayed stale stretches).
	opts := Options{RedisURL: url, KeyPrefix: prefix, StaleAfter: 48 * time.Hour, LatencyAlertMs: 100}
	a := newRedisTestServer(t, opts)
	routesThePast(a)
	now := time.Now()
	start := now.Add(-3 * time.Hour)
	n := 0
	for i := range 400 {
		tm := start.Add(time.Duration(i) * 27 * time.Second)
		status := "connected"
		if i%53 == 0 {
			status = "disconnected"
		}
		a.routeAt(t, tm, fmt.Sprintf(`{"exchange":"gateio","latency":%d,"status":%q}`, 20+i, status))
		if i%3 == 0 {
			a.routeAt(t, tm, fmt.Sprintf(`{"exchange":"binance","latency":%d}`, i))
		}
		n++
	}
	admin := adminClient(t, url)
	waitXLen(t, admin, a.history.StreamKey("gateio"), int64(n))
	waitXLen(t, admin, a.history.StreamKey("binance"), int64((n+2)/3))
	waitFor(t, "the snapshots written", func() bool {
		return admin.HLen(context.Background(), prefix+snapshotKeySuffix).Val() == 2
	})

	var logs syncLog
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b := newRedisTestServer(t, opts)
	if !strings.Contains(logs.String(), `msg="statistics rebuilt from history" exchanges=2 pongs=534`) {
		t.Errorf("log: %s", logs.String())
	}
	at := now.Add(time.Second)
	for _, name := range []string{"gateio", "binance"} {
		for _, w := range health.Windows {
			want, ok1 := a.hub.health.Stats(name, w, at)
			got, ok2 := b.hub.health.Stats(name, w, at)
			if !ok1 || !ok2 || !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s after the restart: %+v (%v), before %+v (%v)", name, w, got, ok2, want, ok1)
			}
		}
		sa, _ := a.hub.health.Status(name)
		sb, _ := b.hub.health.Status(name)
		if sa != sb {
			t.Errorf("%s status after the restart %+v, before %+v", name, sb, sa)
		}
	}
	beforeCounts, afterCounts := a.metrics.exchanges.counts(), b.metrics.exchanges.counts()
	for _, st := range health.Statuses {
		before, after := beforeCounts[st], afterCounts[st]
		if before != after {
			t.Errorf("pongcast_exchanges{status=%q} after the rebuild = %v, before %v", st, after, before)
		}
	}
}

// TestHistoryDedupAcrossStores: three writers given the same pongs (as
// three instances get them, each with its own receive time) record each
// once, in order, the entry IDs from the first writer's receive times.
func TestHistoryDedupAcrossStores(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	admin := adminClient(t, url)
	var stores []*historyStore
	for range 3 {
		stores = append(stores, testHistoryStore(t, url, prefix, 1000))
	}
	base := time.Now()
	var want []string
	for i := range 30 {
		env := fmt.Sprintf(`{"type":"exchange:pong","exchange":"gateio","data":{"exchange":"gateio","n":%d},"timestamp":%d,"source":"exchange"}`,
			i, base.UnixMilli()+int64(i/4))
		want = append(want, env)
		for j, st := range stores {
			// Each instance its own receive time: the hash is of the data.
			e := strings.Replace(env, fmt.Sprintf(`"timestamp":%d`, base.UnixMilli()+int64(i/4)),
				fmt.Sprintf(`"timestamp":%d`, base.UnixMilli()+int64(i/4)+int64(j)), 1)
			if j == 0 {
				e = env
			}
			if err := st.write(context.Background(), historyItem{exchange: "gateio", env: []byte(e), data: len(fmt.Sprintf(`{"exchange":"gateio","n":%d}`, i)),
				ms: base.UnixMilli() + int64(i/4) + int64(j)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	msgs, err := admin.XRange(context.Background(), stores[0].StreamKey("gateio"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Values["env"].(string))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, m := range msgs {
		if wantMs := fmt.Sprintf("%d-", base.UnixMilli()+int64(i/4)); !strings.HasPrefix(m.ID, wantMs) {
			t.Errorf("entry %d has ID %s, want the receive time %s...", i, m.ID, wantMs)
		}
	}
	if dup := testCounter(stores[1].counts.duplicate); dup != 30 {
		t.Errorf("the second store counted %v duplicates, want 30", dup)
	}
}

// TestHistoryQueueBound: a writer that cannot keep up drops what does
// not fit its queue, counted, and never makes the routing path wait.
func TestHistoryQueueBound(t *testing.T) {
	m := NewMetrics(nil)
	st := newHistoryStore(nil, nil, "p:", 10, 16384, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	env := []byte(`{"type":"exchange:pong","exchange":"a","data":{"exchange":"a"},"timestamp":1,"source":"exchange"}`)
	for range historyQueueLen + 5 {
		st.Append("a", env, len(`{"exchange":"a"}`), time.Now()) // no writer runs: nothing drains
	}
	if got := testCounter(m.HistoryWrites.WithLabelValues("dropped")); got != 5 {
		t.Errorf("dropped %v, want 5", got)
	}
}

// TestHistoryFlushAtStop: what is queued when the writer stops is still
// written, within its bound.
func TestHistoryFlushAtStop(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	admin := adminClient(t, url)
	st := testHistoryStore(t, url, prefix, 1000)
	for i := range 50 {
		item := benchEnvelope(i, time.Now().UnixMilli())
		st.Append(item.exchange, item.env, item.data, time.UnixMilli(item.ms))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before it starts: all of it is the flush's
	st.Run(ctx)
	if n := admin.XLen(context.Background(), st.StreamKey("gateio")).Val(); n != 50 {
		t.Errorf("%d of 50 queued pongs written at stop (failed %v)", n, testCounter(st.counts.failed))
	}
}

// TestHistoryRecentPagesNewestFirst: the rebuild's read goes back page by
// page (several entries per ms across page edges) and keeps the newest
// entries when the stream holds more than it may read, oldest first in
// the result; junk entries are skipped and counted.
func TestHistoryRecentPagesNewestFirst(t *testing.T) {
	st := testHistoryStore(t, hubtest.RedisURL(t), hubtest.KeyPrefix(t), 1000)
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UnixMilli()
	key := st.StreamKey("gateio")
	pipe := st.writer.Pipeline()
	const n = 1300
	for i := range n {
		it := benchEnvelope(i, base+int64(i/7))
		env := any(it.env)
		if i == n-10 {
			env = "junk"
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-%d", it.ms, i%7), Values: []any{historyEntryField, env}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	past, last, skipped, err := st.Recent(ctx, "gateio", time.UnixMilli(base), time.Now().Add(time.Minute))
	if err != nil || skipped != 1 || len(past) != 999 {
		t.Fatalf("Recent: %d pongs, %d skipped, %v; want the newest 1000 entries, one of them junk", len(past), skipped, err)
	}
	if first := past[0].Received.UnixMilli(); first != base+int64((n-1000)/7) {
		t.Errorf("oldest pong read at %d, want %d", first, base+int64((n-1000)/7))
	}
	for i := 1; i < len(past); i++ {
		if past[i].Received.Before(past[i-1].Received) {
			t.Fatalf("pong %d older than the one before", i)
		}
	}
	if want := benchEnvelope(n-1, base+int64((n-1)/7)).env; string(last) != string(want) {
		t.Errorf("last envelope %s, want %s", last, want)
	}
	if lat := past[len(past)-1].Sample.Latency; lat != float64(40+(n-1)%1000) {
		t.Errorf("newest latency %v", lat)
	}
}

// TestHistoryClockAheadBounded: an instance whose clock runs a year ahead
// cannot pin the stream's IDs in the future (IDs only grow, so every
// later entry would take that time and since/until would find none of
// them); its lead counts up to historyClockLead.
func TestHistoryClockAheadBounded(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	admin := adminClient(t, url)
	st := testHistoryStore(t, url, prefix, 1000)
	now := time.Now()
	for i, ms := range []int64{now.Add(365 * 24 * time.Hour).UnixMilli(), now.UnixMilli()} {
		if err := st.write(context.Background(), benchEnvelope(1000+i, ms)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := admin.XRange(context.Background(), st.StreamKey("gateio"), "-", "+").Result()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("stream: %v %v", msgs, err)
	}
	limit := time.Now().Add(historyClockLead + time.Minute).UnixMilli()
	for _, m := range msgs {
		if c, err := protocol.ParseCursor(m.ID); err != nil || int64(c.Ms) > limit {
			t.Errorf("entry ID %s is past Redis's clock by more than the lead (limit %d)", m.ID, limit)
		}
	}
	// The entries stay in order, and a query of the last minute finds both.
	page, err := st.Range(context.Background(), protocol.HistoryQuery{Exchange: "gateio", Since: now.Add(-time.Minute).UnixMilli(),
		Until: time.Now().Add(time.Minute).UnixMilli(), Limit: 10}, 0)
	if err != nil || len(page.pongs) != 2 {
		t.Errorf("the last minute holds %d pongs (%v), want 2", len(page.pongs), err)
	}
}

// TestHistoryScanBounded: a stream full of entries a reply leaves out
// (here not envelopes; pongs too large for the message cap are the same)
// costs one request historyScanMax entries at most: it stops there with
// more and the cursor of the last entry it looked at, so paging goes on
// from there, and finds the pong past them.
func TestHistoryScanBounded(t *testing.T) {
	st := testHistoryStore(t, hubtest.RedisURL(t), hubtest.KeyPrefix(t), 10_000)
	ctx := context.Background()
	key := st.StreamKey("gateio")
	base := time.Now().Add(-time.Hour).UnixMilli()
	pipe := st.writer.Pipeline()
	const junk = historyScanMax + 500
	for i := range junk {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-%d", base, i+1), Values: []any{historyEntryField, "junk"}})
	}
	good := benchEnvelope(1, base+1)
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-0", base+1), Values: []any{historyEntryField, good.env}})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	q := protocol.HistoryQuery{Exchange: "gateio", Until: protocol.NoUntil, Limit: 10}
	page, err := st.Range(ctx, q, 16384)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d-%d", base, historyScanMax); len(page.pongs) != 0 || !page.more || page.cursor.String() != want {
		t.Fatalf("first page: %d pongs, more %v, cursor %s; want none, more, cursor %s", len(page.pongs), page.more, page.cursor, want)
	}
	q.After = page.cursor
	page, err = st.Range(ctx, q, 16384)
	if err != nil || len(page.pongs) != 1 || page.more || string(page.pongs[0]) != string(good.env) {
		t.Fatalf("second page: %d pongs, more %v (%v); want the one pong", len(page.pongs), page.more, err)
	}
}

// TestHistoryLateWriteLeftOut: an instance whose writer fell behind (its
// pong queued longer than historyWriteMaxAge) does not write it: by then
// the first writer's hash may have left the recent set (here deleted, as
// the window would), and the pong would be recorded twice.
func TestHistoryLateWriteLeftOut(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	admin := adminClient(t, url)
	first, behind := testHistoryStore(t, url, prefix, 1000), testHistoryStore(t, url, prefix, 1000)
	it := benchEnvelope(7, time.Now().UnixMilli())
	it.queued = time.Now()
	if err := first.write(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	key := first.StreamKey("gateio")
	if err := admin.Del(context.Background(), key+":recent").Err(); err != nil {
		t.Fatal(err)
	}
	it.queued = time.Now().Add(-2 * historyWriteMaxAge)
	if err := behind.write(context.Background(), it); !errors.Is(err, errLate) {
		t.Fatalf("late write: %v, want errLate", err)
	}
	if n := admin.XLen(context.Background(), key).Val(); n != 1 {
		t.Errorf("the stream holds %d entries of one pong, want 1", n)
	}
	if late := testCounter(behind.counts.late); late != 1 {
		t.Errorf("late %v, want 1", late)
	}
}

// A late pong (no script ran) neither resets the writer's backoff nor
// lengthens it: it says nothing of Redis. Only a write that ran resets it.
func TestHistoryPauseIgnoresLateWrites(t *testing.T) {
	var p historyPause
	now := time.Now()
	p.record(errors.New("down"), now)
	p.record(errors.New("down"), now)
	failing := p.backoff
	if failing != 2*feedBackoffMin || !p.paused(now) {
		t.Fatalf("backoff %v after two failures, paused %v; want %v, paused", failing, p.paused(now), 2*feedBackoffMin)
	}
	p.record(errLate, now)
	if p.backoff != failing {
		t.Fatalf("backoff %v after a late pong, want %v kept", p.backoff, failing)
	}
	p.record(nil, now)
	if p.backoff != 0 || p.paused(now) {
		t.Fatalf("backoff %v after a write that ran, want 0", p.backoff)
	}
}

// TestRebuildSharesItsTime: with more history than the rebuild has time
// to read, every exchange gets a share of the time and its newest pongs,
// instead of the first exchanges all of theirs and the others nothing.
func TestRebuildSharesItsTime(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	s := newTestServer(t, Options{RedisURL: url, KeyPrefix: prefix, HistoryLen: historyRebuildMax})
	dropKeys(t, url, prefix)
	ctx := context.Background()
	const exchanges, entries = 4, 30_000 // 1 s of reading and more (BenchmarkHistoryRecent: 40,000 to 120,000 entries/s)
	base := time.Now().Add(-20 * time.Hour).UnixMilli()
	var known []StoredSnapshot
	for x := range exchanges {
		ex := fmt.Sprintf("ex%d", x)
		known = append(known, StoredSnapshot{Exchange: ex})
		pipe := s.historyWriter.Pipeline()
		for i := range entries {
			ms := base + int64(i)*2000
			data := fmt.Sprintf(`{"exchange":%q,"latency":%d}`, ex, i%1000)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.history.StreamKey(ex), ID: fmt.Sprintf("%d-0", ms),
				Values: []any{historyEntryField, protocol.AppendEnvelope(nil, ex, []byte(data), ms)}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.rebuildWithin(ctx, known, 300*time.Millisecond); n != exchanges {
		t.Errorf("%d of %d exchanges rebuilt", n, exchanges)
	}
	for _, k := range known {
		if st, ok := s.hub.health.Status(k.Exchange); !ok || st.Status == "" {
			t.Errorf("%s has no status after the rebuild", k.Exchange)
		}
	}
}

// A client that subscribed before the rebuild from history (the server
// accepts clients before Run finishes it) was told unseen; the rebuild
// then sends it the snapshot and status the history leaves.
func TestRebuildTellsCurrentSubscribers(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	s := newRedisTestServer(t, Options{RedisURL: url, KeyPrefix: prefix})
	c := s.dial(t, "exchanges=gateio", "gateio")
	if m := c.ReadType("subscribed"); !slices.Equal(m.Unseen, []string{"gateio"}) {
		t.Fatalf("got %s, want gateio unseen", m.Raw)
	}
	// Another instance recorded gateio's pongs.
	other := testHistoryStore(t, url, prefix, 1000)
	now := time.Now().UnixMilli()
	for i := range 3 {
		if err := other.write(context.Background(), benchEnvelope(i, now-int64(3-i)*1000)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.rebuildWithin(context.Background(), []StoredSnapshot{{Exchange: "gateio"}}, time.Minute); n != 1 {
		t.Fatalf("rebuilt %d exchanges, want 1", n)
	}
	if m := c.Read(); m.Type != "exchange:pong" || !m.Snapshot || m.Exchange != "gateio" {
		t.Fatalf("got %s, want gateio's replayed snapshot", m.Raw)
	}
	if m := c.Read(); m.Type != "exchange:status" || m.Status != "up" {
		t.Fatalf("got %s, want status up", m.Raw)
	}
}
