package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// publishPong publishes a pong of exchange with a latency and a status.
func (s *testServer) publishPong(t *testing.T, exchange string, latency int, status string) {
	t.Helper()
	if err := s.Publish([]byte(pongJSON(exchange, latency, status))); err != nil {
		t.Fatal(err)
	}
}

// pongJSON is a connector's pong of exchange with a latency and a status.
func pongJSON(exchange string, latency int, status string) string {
	return fmt.Sprintf(`{"exchange":%q,"latency":%d,"status":%q}`, exchange, latency, status)
}

// pongFeed is one way a test's pongs reach a server: start returns the
// server and the function that publishes a payload to it.
type pongFeed struct {
	name  string
	start func(t *testing.T, opts Options) (*testServer, func(t *testing.T, payload string))
}

// pongFeeds are Server.Publish, in process, and PUBLISH through Redis and
// the real feed: a test run on both covers the path pongs really take.
var pongFeeds = []pongFeed{
	{"publish", func(t *testing.T, opts Options) (*testServer, func(*testing.T, string)) {
		s := newTestServer(t, opts)
		return s, func(t *testing.T, payload string) {
			t.Helper()
			if err := s.Publish([]byte(payload)); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"redis", func(t *testing.T, opts Options) (*testServer, func(*testing.T, string)) {
		s := newRedisServer(t, opts)
		return s.testServer, s.publishRedis
	}},
}

// runOnFeeds runs test once per pongFeed, as subtests.
func runOnFeeds(t *testing.T, opts Options, test func(t *testing.T, s *testServer, publish func(*testing.T, string))) {
	for _, feed := range pongFeeds {
		t.Run(feed.name, func(t *testing.T) {
			s, publish := feed.start(t, opts)
			test(t, s, publish)
		})
	}
}

// latencyOf reads data.latency of an envelope.
func latencyOf(t *testing.T, m hubtest.Message) int {
	t.Helper()
	var d struct{ Latency int }
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("%s: %v", m.Raw, err)
	}
	return d.Latency
}

// A client that subscribes after a pong gets, after the subscribed reply,
// the pong again as a snapshot (marked, with its first receive time), then
// the exchange's status; one that subscribed before gets neither.
func TestSnapshotAndStatusOnSubscribe(t *testing.T) {
	s := newTestServer(t, Options{})
	early := s.dial(t, "exchanges=gateio", "*")
	early.ReadType("subscribed")
	s.publishPong(t, "gateio", 45, "connected")
	live := early.Read()
	if live.Type != "exchange:pong" || live.Snapshot {
		t.Fatalf("early client: %s, want the live pong", live.Raw)
	}
	if st := early.Read(); st.Type != "exchange:status" || st.Status != "up" || st.Previous != "" || st.Reason != "pong received" {
		t.Fatalf("early client: %s, want the first status, up, with no previous", st.Raw)
	}

	late := s.dial(t, "", "*")
	late.Send(map[string]any{"type": "subscribe", "exchanges": []string{"gateio", "gatio"}})
	if m := late.Read(); m.Type != "subscribed" || strings.Join(m.Unseen, ",") != "gatio" {
		t.Fatalf("late client: %s, want subscribed with gatio unseen", m.Raw)
	}
	snap := late.Read()
	if snap.Type != "exchange:pong" || !snap.Snapshot || snap.Timestamp != live.Timestamp || latencyOf(t, snap) != 45 {
		t.Fatalf("late client: %s, want the snapshot of %s", snap.Raw, live.Raw)
	}
	if st := late.Read(); st.Type != "exchange:status" || st.Status != "up" || st.Since != live.Timestamp {
		t.Fatalf("late client: %s, want the status up since the pong", st.Raw)
	}
	late.Send(map[string]any{"type": "ping", "id": 1})
	if m := late.Read(); m.Type != "pong" {
		t.Fatalf("late client: %s after the status, want nothing before the ping reply", m.Raw)
	}
}

// Every transition reaches the exchange's subscribers once, in order,
// with previous, since and reason; a client whose token does not allow
// the exchange hears none of it. In process and through Redis.
func TestStatusTransitions(t *testing.T) {
	// No stale deadline can pass between two steps, however slow the
	// machine: the timer has TestStaleFoundByTheTimer to itself.
	runOnFeeds(t, Options{StaleAfter: time.Hour, LatencyAlertMs: 100}, statusTransitions)
}

// gateioAndOutsider connects a subscriber of gateio, and a client
// subscribed to * whose token allows only binance.
func gateioAndOutsider(t *testing.T, s *testServer) (c, other *hubtest.Client) {
	t.Helper()
	c = s.dial(t, "exchanges=gateio", "gateio")
	c.ReadType("subscribed")
	other = s.dial(t, "", "binance")
	other.Send(map[string]any{"type": "subscribe", "exchanges": []string{"*"}})
	other.ReadType("subscribed")
	return c, other
}

func statusTransitions(t *testing.T, s *testServer, publish func(*testing.T, string)) {
	c, other := gateioAndOutsider(t, s)

	steps := []struct {
		latency          int
		status           string
		want, prev, says string
	}{
		{5, "connected", "up", "", "pong received"},
		{500, "connected", "slow", "up", "latency 500 ms over 100 ms"},
		{5, "connected", "up", "slow", "latency 5 ms within 100 ms"},
		{5, "disconnected", "down", "up", "status disconnected"},
		{5, "connected", "up", "down", "pong received"},
	}
	for i, st := range steps {
		publish(t, pongJSON("gateio", st.latency, st.status))
		if m := c.Read(); m.Type != "exchange:pong" || latencyOf(t, m) != st.latency {
			t.Fatalf("step %d: %s, want the pong", i, m.Raw)
		}
		m := c.Read()
		if m.Type != "exchange:status" || m.Status != st.want || m.Previous != st.prev || m.Reason != st.says || m.Since == 0 {
			t.Fatalf("step %d: %s, want %s after %q (%s)", i, m.Raw, st.want, st.prev, st.says)
		}
	}
	if got := exchangesGauge(t, s.metrics, "up"); got != 1 {
		t.Fatalf("exchanges{up} = %v, want 1", got)
	}
	other.Send(map[string]any{"type": "ping", "id": "end"})
	if m := other.Read(); m.Type != "pong" {
		t.Fatalf("a client not allowed gateio got %s", m.Raw)
	}
}

// Silence makes an exchange stale, found by the timer at the last pong +
// StaleAfter, and its next pong makes it up again; a client not allowed
// the exchange hears neither. In process and through Redis.
func TestStaleFoundByTheTimer(t *testing.T) {
	runOnFeeds(t, Options{StaleAfter: 300 * time.Millisecond}, staleFoundByTheTimer)
}

func staleFoundByTheTimer(t *testing.T, s *testServer, publish func(*testing.T, string)) {
	c, other := gateioAndOutsider(t, s)
	publish(t, pongJSON("gateio", 5, "connected"))
	pong := c.ReadType("exchange:pong")
	if m := c.Read(); m.Type != "exchange:status" || m.Status != "up" {
		t.Fatalf("after the pong: %s, want up", m.Raw)
	}
	m := c.Read()
	if m.Type != "exchange:status" || m.Status != "stale" || m.Previous != "up" || m.Reason != "no pong for 300ms" ||
		m.Since != pong.Timestamp+300 {
		t.Fatalf("after silence: %s, want stale since the pong (%d) + 300 ms", m.Raw, pong.Timestamp)
	}
	if got := exchangesGauge(t, s.metrics, "stale"); got != 1 {
		t.Fatalf("exchanges{stale} = %v, want 1", got)
	}
	publish(t, pongJSON("gateio", 5, "connected"))
	c.ReadType("exchange:pong")
	if m := c.Read(); m.Status != "up" || m.Previous != "stale" {
		t.Fatalf("after a pong: %s, want up after stale", m.Raw)
	}
	other.Send(map[string]any{"type": "ping", "id": "end"})
	if m := other.Read(); m.Type != "pong" {
		t.Fatalf("a client not allowed gateio got %s", m.Raw)
	}
}

// A pong published while clients subscribe reaches each exactly once,
// live or as the snapshot, and never is a live pong followed by an older
// snapshot.
func TestSnapshotNeverFollowsANewerLivePong(t *testing.T) {
	s := newTestServer(t, Options{})
	const rounds, pongs = 40, 50
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			s.publishPong(t, "gateio", i, "connected")
		}
	}()
	for r := range rounds {
		c := s.dial(t, "", "*")
		c.Subscribe("gateio")
		last := 0
		for range pongs {
			m := c.Read()
			if m.Type != "exchange:pong" {
				continue // the status after the snapshot
			}
			if n := latencyOf(t, m); n <= last {
				t.Fatalf("round %d: pong %d (snapshot %v) after pong %d", r, n, m.Snapshot, last)
			} else {
				last = n
			}
		}
		c.Conn.CloseNow()
	}
	close(done)
	wg.Wait()
}

// Statistics over a window, by message and by HTTP, only for exchanges
// the token allows. In process and through Redis.
func TestStatsByMessageAndHTTP(t *testing.T) {
	runOnFeeds(t, Options{}, statsByMessageAndHTTP)
}

func statsByMessageAndHTTP(t *testing.T, s *testServer, publish func(*testing.T, string)) {
	// The watcher sees each pong routed: through Redis they arrive
	// after PUBLISH returns.
	watcher := s.dial(t, "exchanges=*", "*")
	watcher.ReadType("subscribed")
	lats := []int{10, 20, 30, 40, 100}
	for _, lat := range lats {
		publish(t, pongJSON("gateio", lat, "connected"))
	}
	publish(t, pongJSON("binance", 7, "connected"))
	for range len(lats) + 1 {
		watcher.ReadType("exchange:pong")
	}
	c := s.dial(t, "", "gateio")
	c.Send(map[string]any{"type": "stats", "window": "1m", "id": "q"})
	m := c.ReadType("stats")
	var reply struct {
		Window    string                          `json:"window"`
		Exchanges map[string]health.ExchangeStats `json:"exchanges"`
	}
	if err := json.Unmarshal(m.Raw, &reply); err != nil {
		t.Fatal(err)
	}
	g, ok := reply.Exchanges["gateio"]
	if reply.Window != "1m" || len(reply.Exchanges) != 1 || !ok || string(m.ID) != `"q"` {
		t.Fatalf("stats reply %s, want gateio alone", m.Raw)
	}
	if g.Count != 5 || g.Latency == nil || g.Latency.Avg != 40 || g.Latency.Max != 100 || g.Status != "up" || g.Availability != 1 {
		t.Fatalf("gateio stats %+v (latency %+v)", g, g.Latency)
	}
	if p50 := g.Latency.P50; p50 < 28.5 || p50 > 31.5 {
		t.Fatalf("p50 %v, want 30 within 5%%", p50)
	}
	c.Send(map[string]any{"type": "stats", "exchanges": []string{"binance"}})
	if m := c.ReadType("error"); m.Code != "forbidden" {
		t.Fatalf("stats of binance under a gateio token: %s", m.Raw)
	}
	c.Send(map[string]any{"type": "stats", "window": "2m"})
	if m := c.ReadType("error"); m.Code != "bad_request" || !strings.Contains(m.Message, "1m, 5m, 1h or 24h") {
		t.Fatalf("an unknown window: %s", m.Raw)
	}

	get := func(path, token string) (*http.Response, map[string]json.RawMessage) {
		t.Helper()
		var body map[string]json.RawMessage
		resp := getInto(t, s.url+path, token, &body)
		return resp, body
	}
	gateTok := hubtest.Token(t, "h", time.Hour, "gateio")
	resp, body := get("/v1/exchanges?window=1m", gateTok)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(string(body["exchanges"]), `"gateio"`) || strings.Contains(string(body["exchanges"]), `"binance"`) {
		t.Fatalf("GET /v1/exchanges: %s %s", resp.Status, body["exchanges"])
	}
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/v1/exchanges", "", http.StatusUnauthorized},
		{"/v1/exchanges", "not-a-token", http.StatusUnauthorized},
		{"/v1/exchanges/gateio", gateTok, http.StatusOK},
		{"/v1/exchanges/binance", gateTok, http.StatusForbidden},
		{"/v1/exchanges/kraken", hubtest.Token(t, "h", time.Hour, "*"), http.StatusNotFound},
		{"/v1/exchanges?window=2m", gateTok, http.StatusBadRequest},
	} {
		if resp, _ := get(tc.path, tc.token); resp.StatusCode != tc.status {
			t.Errorf("GET %s: %s, want %d", tc.path, resp.Status, tc.status)
		}
	}
}

// A publisher naming endless exchanges grows nothing past the bound; the
// pongs are still delivered, and the overflow counted. (A hundred thousand
// of them: TestHostilePublisherFlood; memory: BenchmarkHostilePublisher.)
func TestExchangesPastTheBoundAreDeliveredNotTracked(t *testing.T) {
	var logs syncLog
	s := newTestServer(t, Options{MaxExchanges: 5, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := s.dial(t, "exchanges=*", "*")
	c.ReadType("subscribed")
	for i := range 50 {
		s.publishPong(t, fmt.Sprintf("x%d", i), 1, "connected")
	}
	for i := range 50 {
		if m := c.ReadType("exchange:pong"); m.Exchange != fmt.Sprintf("x%d", i) {
			t.Fatalf("pong %d: %s", i, m.Raw)
		}
	}
	if got := testCounter(s.metrics.ExchangesUntracked); got != 45 {
		t.Fatalf("untracked = %v, want 45", got)
	}
	if n := strings.Count(logs.String(), "exchange not tracked: --max-exchanges reached"); n != 1 {
		t.Fatalf("%d warnings about untracked exchanges, want one (rate-limited):\n%s", n, logs.String())
	}
	if got := len(s.hub.health.Exchanges(nil)); got != 5 {
		t.Fatalf("%d exchanges tracked, want 5", got)
	}
}

// A wildcard subscribe owes a snapshot and a status for every exchange
// known, far more than the send queue holds: a client reading through a
// small window gets them all, and is not closed as a slow consumer.
func TestWildcardSubscribeBurstFitsASmallQueue(t *testing.T) {
	s := newTestServer(t, Options{SendQueue: 8})
	const exchanges = 800
	pad := strings.Repeat("x", 8000) // 6.4 MB of snapshots: more than the socket buffers hold
	for i := range exchanges {
		if err := s.Publish([]byte(fmt.Sprintf(`{"exchange":"x%03d","latency":1,"pad":%q}`, i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := hubtest.TryRawDialWith(t, &net.Dialer{Control: smallReceiveBuffer}, s.wsURL("exchanges=*"), hubtest.Token(t, "w", time.Hour, "*"))
	if err != nil {
		t.Fatal(err)
	}
	snapshots, statuses := 0, 0
	for snapshots+statuses < 2*exchanges {
		f, err := hubtest.ReadServerFrame(c.Reader())
		if err != nil {
			t.Fatalf("after %d snapshots and %d statuses: %v", snapshots, statuses, err)
		}
		switch p := string(f.Payload); {
		case strings.HasPrefix(p, `{"type":"subscribed"`):
		case strings.HasSuffix(p, `"snapshot":true}`):
			snapshots++
		case strings.HasPrefix(p, `{"type":"exchange:status"`):
			statuses++
		default:
			t.Fatalf("unexpected frame %q", hubtest.Truncate(f.Payload))
		}
	}
	if got := testCounter(s.metrics.SlowConsumerCloses); got != 0 {
		t.Fatalf("%v slow-consumer closes", got)
	}
}

// An exchange known only from the shared snapshots (merged at start, no
// pong here yet) is owed its snapshot on a wildcard subscribe too.
func TestWildcardGetsMergedSnapshots(t *testing.T) {
	s := newTestServer(t, Options{})
	env := []byte(`{"type":"exchange:pong","exchange":"gateio","data":{"exchange":"gateio","latency":3},"timestamp":1765738899920,"source":"exchange"}`)
	s.hub.health.Merge("gateio", env, time.UnixMilli(1765738899920))
	c := s.dial(t, "exchanges=*", "*")
	c.Read() // subscribed
	if m := c.Read(); !m.Snapshot || m.Exchange != "gateio" {
		t.Fatalf("%s, want the merged snapshot", m.Raw)
	}
}

// A server given a Redis URL but never run starts no goroutine that
// outlives its Shutdown (go-redis starts some of its own).
func TestServerNeverRunLeaksNothing(t *testing.T) {
	// The embedded Redis, when there is no real one, runs until the test's
	// cleanup: started before the goroutines are counted.
	url := hubtest.RedisURL(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := NewServer(Options{Verifier: hubtest.Verifier(t), RedisURL: url, Channel: hubtest.Channel(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The statistics endpoint takes from the per-address handshake bucket: a
// client cannot make the server sum every exchange's statistics at will.
func TestStatsEndpointIsRateLimited(t *testing.T) {
	s := newTestServer(t, Options{HandshakeRate: 0.001, HandshakeBurst: 2})
	tok := hubtest.Token(t, "r", time.Hour, "*")
	for i := range 2 {
		var body map[string]json.RawMessage
		if resp := getInto(t, s.url+"/v1/exchanges", tok, &body); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	resp, body := getJSON(t, s.url+"/v1/exchanges", tok)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || body.Error != "rate_limited" {
		t.Fatalf("third request: %s %+v, want 429 with Retry-After", resp.Status, body)
	}
}

// A hostile publisher naming 100,000 distinct exchanges: the tracker stays
// at its bound, the rest is counted, and a valid pong after the flood is
// delivered to its subscriber.
func TestHostilePublisherFlood(t *testing.T) {
	s := newTestServer(t, Options{})
	c := s.dial(t, "exchanges=gateio", "*")
	c.ReadType("subscribed")
	const flood = 100_000
	for i := range flood {
		if err := s.route(fmt.Appendf(nil, `{"exchange":"h%06d","latency":1}`, i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s.publishPong(t, "gateio", 7, "connected")
	if m := c.ReadType("exchange:pong"); latencyOf(t, m) != 7 {
		t.Fatalf("%s", m.Raw)
	}
	if got := len(s.hub.health.Held(nil)); got != health.DefaultMaxExchanges {
		t.Fatalf("%d exchanges held, want the bound %d", got, health.DefaultMaxExchanges)
	}
	// The bound filled with flood names, so gateio is one more untracked.
	if got := testCounter(s.metrics.ExchangesUntracked); got != flood-health.DefaultMaxExchanges+1 {
		t.Fatalf("untracked = %v, want %d", got, flood-health.DefaultMaxExchanges+1)
	}
}
