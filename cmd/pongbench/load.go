package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/config"
)

// benchClient is one connection of the fleet.
type benchClient struct {
	idx       int
	ws        *wsClient
	exchange  string // "" when it receives every exchange
	received  atomic.Int64
	closeCode atomic.Int32 // set when the server closed it
	fd        int32
	pending   []byte // a partial frame, owned by the poller
}

// fleet is the set of clients and what they have received.
type fleet struct {
	o        *options
	hist     *latencyHist
	snapHist *latencyHist // --snapshot: dial to snapshot, per client
	received atomic.Int64
	closed   atomic.Int64
	mu       sync.Mutex
	clients  []*benchClient
	tokens   []string
	base     *url.URL
	poller   *poller
}

var sentKey = []byte(`"sent_ns":`)

func newFleet(o *options) (*fleet, error) {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("--url must be ws://, got %q", o.url)
	}
	if u.Scheme == "wss" {
		return nil, errors.New("--url: wss:// is not supported; benchmark on loopback with ws://")
	}
	f := &fleet{o: o, hist: newLatencyHist(), snapHist: newLatencyHist(), base: u}
	if f.poller, err = newPoller(f); err != nil {
		return nil, err
	}
	if o.mode == "pongcast" {
		signer, err := auth.NewHMACSigner(o.secret, "HS256")
		if err != nil {
			return nil, err
		}
		ttl := o.duration + o.hold + time.Hour
		for i := range o.clients {
			tok, err := signer.Issue(auth.TokenSpec{Subject: "bench-" + strconv.Itoa(i), Exchanges: []string{"*"}, TTL: ttl})
			if err != nil {
				return nil, err
			}
			f.tokens = append(f.tokens, tok)
		}
	}
	return f, nil
}

// exchangeOf is the exchange client i subscribes to ("" for all).
func (f *fleet) exchangeOf(i int) string {
	if f.o.mode == "seed" || f.o.wildcard {
		return ""
	}
	return "ex" + strconv.Itoa(i%f.o.exchanges)
}

// connect opens client i, waits for its subscription to be confirmed, and
// starts its reader.
func (f *fleet) connect(ctx context.Context, i int) (*benchClient, error) {
	u := *f.base
	token := ""
	if f.o.mode == "pongcast" {
		q := u.Query()
		if f.o.wildcard {
			q.Set("exchanges", "*")
		} else {
			q.Set("exchanges", f.exchangeOf(i))
		}
		u.RawQuery = q.Encode()
		token = f.tokens[i%len(f.tokens)]
	}
	var local net.Addr
	if f.o.sourceIPs > 1 {
		local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%f.o.sourceIPs))}
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	dialed := time.Now()
	ws, err := dialWS(dctx, &u, token, local)
	if err != nil {
		return nil, err
	}
	if f.o.mode == "pongcast" {
		_ = ws.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		msg, err := ws.next()
		if err != nil {
			ws.conn.Close()
			return nil, fmt.Errorf("waiting for subscribed: %w", err)
		}
		if !bytes.HasPrefix(msg, []byte(`{"type":"subscribed"`)) {
			ws.conn.Close()
			return nil, fmt.Errorf("first message is %.80s, want subscribed", msg)
		}
		if f.o.snapshot {
			msg, err := ws.next()
			if err != nil || !bytes.HasSuffix(msg, snapshotMark) {
				ws.conn.Close()
				return nil, fmt.Errorf("waiting for the snapshot: %.80s %v", msg, err)
			}
			f.snapHist.record(time.Since(dialed).Microseconds())
		}
		_ = ws.conn.SetReadDeadline(time.Time{})
	}
	c := &benchClient{idx: i, ws: ws, exchange: f.exchangeOf(i)}
	if err := f.poller.add(c); err != nil {
		ws.conn.Close()
		return nil, err
	}
	return c, nil
}

// snapshotMark ends the snapshot of a pong the server sends on subscribe.
var snapshotMark = []byte(`,"snapshot":true}`)

// deliver counts one message for c and records its latency; now is when
// its bytes were read.
func (f *fleet) deliver(c *benchClient, msg []byte, now int64) {
	k := bytes.Index(msg, sentKey)
	if k < 0 || bytes.HasSuffix(msg, snapshotMark) {
		return // not a pong of ours, or a snapshot of one: no delivery
	}
	sent := parseInt(msg[k+len(sentKey):])
	f.hist.record((now - sent) / 1000)
	c.received.Add(1)
	f.received.Add(1)
}

func parseInt(b []byte) int64 {
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int64(ch-'0')
	}
	return n
}

// connectAll connects clients [from, to) with o.connectParallel workers.
func (f *fleet) connectAll(ctx context.Context, from, to int) (connected int, firstErr error) {
	idx := make(chan int)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var n atomic.Int64
	for range f.o.connectParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				c, err := f.connect(ctx, i)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("client %d: %w", i, err) })
					continue
				}
				n.Add(1)
				f.mu.Lock()
				f.clients = append(f.clients, c)
				f.mu.Unlock()
			}
		}()
	}
	for i := from; i < to && ctx.Err() == nil; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return int(n.Load()), firstErr
}

// closeAll closes every client and stops the poller.
func (f *fleet) closeAll() {
	f.mu.Lock()
	clients := f.clients
	f.clients = nil
	f.mu.Unlock()
	for _, c := range clients {
		f.poller.remove(c)
		c.ws.close()
	}
	f.poller.close()
}

// subscribers counts the connected clients per exchange ("" = all).
func (f *fleet) subscribers() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for _, c := range f.clients {
		m[c.exchange]++
	}
	return m
}

// publisher publishes numbered pongs at a fixed rate.
type publisher struct {
	client    *redis.Client
	channel   string
	exchanges int
	sent      int
	buf       []byte
}

func newPublisher(o *options) (*publisher, error) {
	opts, err := config.ParseRedisURL(o.redisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	return &publisher{client: redis.NewClient(opts), channel: o.channel, exchanges: o.exchanges}, nil
}

// publish sends pong number n; it returns the exchange it went to.
func (p *publisher) publish(ctx context.Context, n int) (string, error) {
	ex := "ex" + strconv.Itoa(n%p.exchanges)
	p.buf = p.buf[:0]
	p.buf = append(p.buf, `{"exchange":"`...)
	p.buf = append(p.buf, ex...)
	p.buf = append(p.buf, `","latency":1,"timestamp":`...)
	now := time.Now()
	p.buf = strconv.AppendInt(p.buf, now.UnixMilli(), 10)
	p.buf = append(p.buf, `,"status":"connected","seq":`...)
	p.buf = strconv.AppendInt(p.buf, int64(n), 10)
	p.buf = append(p.buf, `,"sent_ns":`...)
	p.buf = strconv.AppendInt(p.buf, time.Now().UnixNano(), 10)
	p.buf = append(p.buf, '}')
	err := p.client.Publish(ctx, p.channel, p.buf).Err()
	if err == nil {
		p.sent++
	}
	return ex, err
}

// run publishes pong after pong at rate from begin until duration has
// passed, and reports each one (its exchange, or its error) to sent; an
// error from sent stops the run.
func (p *publisher) run(ctx context.Context, rate float64, duration time.Duration, begin time.Time, sent func(ex string, err error) error) error {
	interval := time.Duration(float64(time.Second) / rate)
	for n := 0; ; n++ {
		at := begin.Add(time.Duration(n) * interval)
		if at.Sub(begin) >= duration || ctx.Err() != nil {
			return nil
		}
		time.Sleep(time.Until(at))
		if err := sent(p.publish(ctx, n)); err != nil {
			return err
		}
	}
}

// loadReport is what runLoad measures.
type loadReport struct {
	Label            string  `json:"label,omitempty"`
	Mode             string  `json:"mode"`
	Clients          int     `json:"clients"`
	Connected        int     `json:"connected"`
	Exchanges        int     `json:"exchanges"`
	Wildcard         bool    `json:"wildcard,omitempty"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	ConnectsPerSec   float64 `json:"connects_per_sec"`
	RatePerSec       float64 `json:"rate_per_sec"`
	DurationSeconds  float64 `json:"duration_seconds"`
	Published        int     `json:"published"`
	Expected         int64   `json:"deliveries_expected"`
	Received         int64   `json:"deliveries_received"`
	Lost             int64   `json:"deliveries_lost"`
	ClosedByServer   int64   `json:"clients_closed_by_server"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	P50Ms            float64 `json:"p50_ms"`
	P90Ms            float64 `json:"p90_ms"`
	P99Ms            float64 `json:"p99_ms"`
	P999Ms           float64 `json:"p999_ms"`
	MaxMs            float64 `json:"max_ms"`
	// --snapshot: dial to the snapshot, per client.
	SnapshotP50Ms    float64 `json:"snapshot_p50_ms,omitempty"`
	SnapshotP99Ms    float64 `json:"snapshot_p99_ms,omitempty"`
	ServerRSSBefore  uint64  `json:"server_rss_before_bytes,omitempty"`
	ServerRSSAfter   uint64  `json:"server_rss_after_bytes,omitempty"`
	RSSPerConnKiB    float64 `json:"server_rss_per_conn_kib,omitempty"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds_publish,omitempty"`
	BenchCPUSeconds  float64 `json:"bench_cpu_seconds_publish"`
	BenchCPUPerDelUs float64 `json:"bench_cpu_per_delivery_us"`
	ServerCPUPerDel  float64 `json:"server_cpu_per_delivery_us,omitempty"`
	PerWakeup        float64 `json:"deliveries_per_wakeup"`
	FileLimit        uint64  `json:"bench_file_limit"`
	SourceIPs        int     `json:"source_ips"`
}

func runLoad(ctx context.Context, o *options, log io.Writer) (*loadReport, error) {
	r := &loadReport{Label: o.label, Mode: o.mode, Clients: o.clients, Exchanges: o.exchanges, Wildcard: o.wildcard,
		RatePerSec: o.rate, FileLimit: raiseFileLimit(), SourceIPs: o.sourceIPs}
	if need := uint64(o.clients + 64); r.FileLimit < need {
		return nil, fmt.Errorf("%d clients need %d open files, the limit here is %d", o.clients, need, r.FileLimit)
	}
	f, err := newFleet(o)
	if err != nil {
		return nil, err
	}
	if o.serverPID > 0 {
		r.ServerRSSBefore, _ = rssBytes(o.serverPID)
	}
	if o.snapshot {
		if err := publishSnapshots(ctx, o); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "connecting %d clients to %s ...\n", o.clients, o.url)
	start := time.Now()
	connected, cerr := f.connectAll(ctx, 0, o.clients)
	r.ConnectSeconds = time.Since(start).Seconds()
	r.Connected = connected
	r.ConnectsPerSec = float64(connected) / r.ConnectSeconds
	defer f.closeAll()
	if cerr != nil {
		fmt.Fprintf(log, "connect errors, first: %v\n", cerr)
	}
	if connected == 0 {
		return r, fmt.Errorf("no client connected: %w", cerr)
	}
	fmt.Fprintf(log, "connected %d in %.2fs (%.0f/s)\n", connected, r.ConnectSeconds, r.ConnectsPerSec)
	if o.snapshot {
		sh := f.snapHist.merged()
		r.SnapshotP50Ms, r.SnapshotP99Ms = float64(sh.ValueAtQuantile(50))/1000, float64(sh.ValueAtQuantile(99))/1000
	}
	if o.hold > 0 {
		fmt.Fprintf(log, "holding idle connections for %s ...\n", o.hold)
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
		}
	}
	if o.serverPID > 0 {
		r.ServerRSSAfter, _ = rssBytes(o.serverPID)
		if r.ServerRSSAfter > r.ServerRSSBefore {
			r.RSSPerConnKiB = float64(r.ServerRSSAfter-r.ServerRSSBefore) / 1024 / float64(connected)
		}
	}
	if o.rate == 0 || o.duration == 0 {
		return r, nil
	}

	pub, err := newPublisher(o)
	if err != nil {
		return r, err
	}
	defer pub.client.Close()
	subs := f.subscribers()
	fmt.Fprintf(log, "publishing %.0f pongs/s for %s ...\n", o.rate, o.duration)
	cpu0, srv0 := selfCPU(), serverCPU(o.serverPID)
	wake0 := f.poller.wakeups.Load()
	begin := time.Now()
	var expected int64
	err = pub.run(ctx, o.rate, o.duration, begin, func(ex string, err error) error {
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		expected += int64(subs[ex] + subs[""])
		return nil
	})
	if err != nil {
		return r, err
	}
	publishEnd := time.Now()
	deadline := publishEnd.Add(o.drain)
	for f.received.Load() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(begin)
	r.BenchCPUSeconds = (selfCPU() - cpu0).Seconds()
	if o.serverPID > 0 {
		r.ServerCPUSeconds = (serverCPU(o.serverPID) - srv0).Seconds()
	}
	r.DurationSeconds = publishEnd.Sub(begin).Seconds()
	r.Published = pub.sent
	r.Expected = expected
	r.Received = f.received.Load()
	r.Lost = max(0, r.Expected-r.Received)
	r.ClosedByServer = f.closed.Load()
	r.DeliveriesPerSec = float64(r.Received) / elapsed.Seconds()
	if r.Received > 0 {
		r.BenchCPUPerDelUs = r.BenchCPUSeconds * 1e6 / float64(r.Received)
		r.ServerCPUPerDel = r.ServerCPUSeconds * 1e6 / float64(r.Received)
	}
	if w := f.poller.wakeups.Load() - wake0; w > 0 {
		r.PerWakeup = float64(r.Received) / float64(w)
	}
	h := f.hist.merged()
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms = ms(50), ms(90), ms(99), ms(99.9)
	r.MaxMs = float64(h.Max()) / 1000
	return r, nil
}

// publishSnapshots publishes one pong per exchange and waits until the
// server has one to give: a probe client of the last exchange gets it as
// its snapshot (or, if it came first, live).
func publishSnapshots(ctx context.Context, o *options) error {
	p, err := newPublisher(o)
	if err != nil {
		return err
	}
	defer p.client.Close()
	for n := range o.exchanges {
		if _, err := p.publish(ctx, n); err != nil {
			return fmt.Errorf("--snapshot: publish: %w", err)
		}
	}
	// Pub/Sub is asynchronous: the last pong has reached the server once
	// a new subscriber of its exchange is handed it.
	probe := *o
	probe.clients, probe.snapshot = 1, true
	f, err := newFleet(&probe)
	if err != nil {
		return err
	}
	defer f.poller.close()
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := f.connect(ctx, o.exchanges-1)
		if err == nil {
			c.ws.close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("--snapshot: the server has no snapshot of ex%d after 15s: %w", o.exchanges-1, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	d, _ := processCPU(pid)
	return d
}

func (r *loadReport) table(w io.Writer) {
	row := func(k string, v any) { fmt.Fprintf(w, "%-28s %v\n", k, v) }
	if r.Label != "" {
		row("workload", r.Label)
	}
	row("mode", r.Mode)
	row("clients connected", fmt.Sprintf("%d of %d (%d source IPs)", r.Connected, r.Clients, r.SourceIPs))
	row("connect time", fmt.Sprintf("%.2fs (%.0f connects/s)", r.ConnectSeconds, r.ConnectsPerSec))
	if r.ServerRSSAfter > 0 {
		row("server RSS before/after", fmt.Sprintf("%.1f MiB / %.1f MiB (%.2f KiB per connection)",
			float64(r.ServerRSSBefore)/(1<<20), float64(r.ServerRSSAfter)/(1<<20), r.RSSPerConnKiB))
	}
	if r.Published == 0 {
		return
	}
	row("pongs published", fmt.Sprintf("%d at %.0f/s over %.1fs, %d exchanges", r.Published, r.RatePerSec, r.DurationSeconds, r.Exchanges))
	row("deliveries", fmt.Sprintf("expected %d, received %d, lost %d", r.Expected, r.Received, r.Lost))
	row("clients closed by server", r.ClosedByServer)
	row("deliveries/s", fmt.Sprintf("%.0f", r.DeliveriesPerSec))
	row("latency p50/p90/p99", fmt.Sprintf("%.3f / %.3f / %.3f ms", r.P50Ms, r.P90Ms, r.P99Ms))
	row("latency p99.9/max", fmt.Sprintf("%.3f / %.3f ms", r.P999Ms, r.MaxMs))
	if r.SnapshotP99Ms > 0 {
		row("dial to snapshot p50/p99", fmt.Sprintf("%.3f / %.3f ms", r.SnapshotP50Ms, r.SnapshotP99Ms))
	}
	if r.ServerCPUSeconds > 0 {
		row("server CPU (publish phase)", fmt.Sprintf("%.2fs (%.2f µs per delivery)", r.ServerCPUSeconds, r.ServerCPUPerDel))
	}
	row("pongbench CPU", fmt.Sprintf("%.2fs (%.2f µs per delivery)", r.BenchCPUSeconds, r.BenchCPUPerDelUs))
	row("pongbench reads", fmt.Sprintf("%.1f deliveries per wake-up", r.PerWakeup))
}
