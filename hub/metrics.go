package hub

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
)

// Metrics are the server's Prometheus collectors, all under the pongcast_
// prefix.
type Metrics struct {
	Registry *prometheus.Registry

	ClientsConnected   prometheus.Gauge
	Subscriptions      prometheus.Gauge
	PongsReceived      prometheus.Counter
	PongsRejected      *prometheus.CounterVec
	PongsRouted        prometheus.Counter
	Delivered          prometheus.Counter
	Dropped            prometheus.Counter
	SlowConsumerCloses prometheus.Counter
	Conflated          prometheus.Counter
	RateLimited        prometheus.Counter
	RateLimitCloses    prometheus.Counter
	AuthFailures       *prometheus.CounterVec
	HandshakeRefusals  *prometheus.CounterVec
	ClientCloses       *prometheus.CounterVec
	DeliveryLatency    prometheus.Histogram
	RedisUp            prometheus.Gauge
	// RedisReconnects counts the times the subscription came back after
	// it was lost; RedisReconnectAttempts counts the tries, failed or not.
	RedisReconnects        prometheus.Counter
	RedisReconnectAttempts prometheus.Counter
	// ExchangesUntracked counts the pongs of exchanges past the bound;
	// ExchangesForgotten the exchanges dropped after the horizon without
	// a pong. The tracked exchanges by status now are read from the
	// servers' trackers at each scrape (see exchangeGauges).
	ExchangesUntracked prometheus.Counter
	ExchangesForgotten prometheus.Counter
	exchanges          *exchangeGauges
	// HistoryWrites counts the pongs given to the history writer, by
	// outcome; HistoryQueries the history requests that reached Redis
	// (ok, error) and those refused at once for want of room (busy).
	HistoryWrites  *prometheus.CounterVec
	HistoryQueries *prometheus.CounterVec
	// The token lifecycle: refreshes accepted, revocation entries held,
	// connections closed for a revoked token, entries not held for the
	// bound, and entries or announcements refused as malformed.
	TokenRefreshes      prometheus.Counter
	Revocations         prometheus.Gauge
	RevokedCloses       prometheus.Counter
	RevocationsOverflow prometheus.Counter
	RevocationsInvalid  prometheus.Counter
}

// handshakeRefusalReasons are the reason labels of
// pongcast_handshake_refusals_total, declared up front so a dashboard sees
// zeros, not gaps. TestMetricReasonsMatchTheCode checks that the list and
// the code name the same reasons.
var handshakeRefusalReasons = []string{
	"bad_request", "forbidden", "ip_rate", "origin", "shutting_down", "upgrade",
	string(admitServerFull), string(admitUserFull), string(admitPendingFull), string(admitPendingIP),
	string(admitUnauthFull), string(admitUnauthIP),
}

// closeCauses are the causes a client connection ends for, whose labels
// are the reason labels of pongcast_client_closes_total, declared up
// front. TestMetricReasonsMatchTheCode checks that every Cause in this
// package and in wsconn is here.
var closeCauses = []wsconn.Cause{
	causeRateLimit, causeTokenExpired, causeShutdown, causeBinary, causeInvalidUTF8,
	causeUnauthorized, causeTokenRevoked, causeConnectionLimit,
	wsconn.CauseSlowConsumer, wsconn.CauseWriteTimeout, wsconn.CauseKeepAlive, wsconn.CauseMessageTimeout,
	wsconn.CausePeerClosed, wsconn.CauseTooBig, wsconn.CauseConnError,
}

// NewMetrics creates the collectors and registers them, with the Go and
// process collectors, on reg. If reg is nil a new registry is made.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Registry: reg,
		ClientsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pongcast_clients_connected", Help: "WebSocket clients connected now."}),
		Subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pongcast_subscriptions", Help: "Subscriptions held now, named and wildcard, over all clients."}),
		PongsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_pongs_received_total", Help: "Messages received on the Redis channel."}),
		PongsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pongcast_pongs_rejected_total", Help: "Messages from Redis dropped as invalid, by reason."}, []string{"reason"}),
		PongsRouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_pongs_routed_total", Help: "Valid pongs routed to subscribers."}),
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_deliveries_total", Help: "Pong envelopes written to clients."}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_deliveries_dropped_total", Help: "Pong envelopes not delivered because the client's queue was full or it was closing."}),
		SlowConsumerCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_slow_consumer_closes_total", Help: "Clients closed because their send queue was full."}),
		Conflated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_conflated_total", Help: "Frames left unsent to slow clients (slow client policy conflate) because a newer one of the same exchange superseded them in the full queue; not counted in pongcast_deliveries_dropped_total."}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_rate_limit_refusals_total", Help: "Client messages and pings refused by the token bucket."}),
		RateLimitCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_rate_limit_closes_total", Help: "Clients closed for going over the rate limit repeatedly."}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pongcast_auth_failures_total", Help: "Handshakes and auth messages refused for their token (or its absence), by reason."}, []string{"reason"}),
		HandshakeRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pongcast_handshake_refusals_total", Help: "Handshakes refused for reasons other than the token, by reason."}, []string{"reason"}),
		ClientCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pongcast_client_closes_total", Help: "Client connections ended, by reason."}, []string{"reason"}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pongcast_delivery_latency_seconds",
			Help:    "Time from a pong's arrival from Redis to its write to a client socket.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pongcast_redis_subscription_up", Help: "1 while the Redis subscription is live."}),
		RedisReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_redis_reconnects_total", Help: "Times the Redis subscription became live again after it was lost."}),
		RedisReconnectAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_redis_reconnect_attempts_total", Help: "Attempts to subscribe to Redis again after a failure, successful or not."}),
		ExchangesUntracked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_exchanges_untracked_total", Help: "Pongs of exchanges past --max-exchanges: delivered, but not tracked."}),
		ExchangesForgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_exchanges_forgotten_total", Help: "Exchanges forgotten after 24h without a pong, their slots freed for others."}),
		exchanges: &exchangeGauges{trackers: make(map[*health.Tracker]struct{})},
		HistoryWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pongcast_history_writes_total", Help: "Pongs given to the history writer, by result: ok (this instance wrote it), duplicate (another instance had), failed (Redis refused or was down; not retried), dropped (the write queue was full), late (queued more than 5 s: left to the instances that kept up, as it could be recorded twice)."}, []string{"result"}),
		HistoryQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pongcast_history_queries_total", Help: fmt.Sprintf("History requests (message or HTTP), by result: ok or error (read from Redis, or not in time), busy (refused at once: a message, rate_limited, with %d of the client's pending; an HTTP request, 503, with %d being served).", historyPending, historyHTTPSlots)}, []string{"result"}),
		TokenRefreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_token_refreshes_total", Help: "Tokens replaced in-band by an auth message on an authenticated connection."}),
		Revocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pongcast_revocations", Help: "Revocation entries (pongctl token revoke) held now."}),
		RevokedCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_revoked_closes_total", Help: "Connections closed because their token was revoked."}),
		RevocationsOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_revocations_overflow_total", Help: "Revocation entries not held because --max-revocations were held already."}),
		RevocationsInvalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pongcast_revocations_invalid_total", Help: "Revocation entries or announcements from Redis refused as malformed."}),
	}
	reg.MustRegister(m.ClientsConnected, m.Subscriptions, m.PongsReceived, m.PongsRejected,
		m.PongsRouted, m.Delivered, m.Dropped, m.SlowConsumerCloses, m.Conflated, m.RateLimited, m.RateLimitCloses,
		m.AuthFailures, m.HandshakeRefusals, m.ClientCloses, m.DeliveryLatency, m.RedisUp, m.RedisReconnects,
		m.RedisReconnectAttempts, m.exchanges, m.ExchangesUntracked, m.ExchangesForgotten, m.HistoryWrites, m.HistoryQueries,
		m.TokenRefreshes, m.Revocations, m.RevokedCloses, m.RevocationsOverflow, m.RevocationsInvalid,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Pre-declare label values so dashboards see zeros, not gaps.
	for _, r := range protocol.RejectReasons {
		m.PongsRejected.WithLabelValues(r)
	}
	for _, r := range auth.Reasons {
		m.AuthFailures.WithLabelValues(r)
	}
	for _, r := range handshakeRefusalReasons {
		m.HandshakeRefusals.WithLabelValues(r)
	}
	for _, c := range closeCauses {
		m.ClientCloses.WithLabelValues(c.Label)
	}
	for _, r := range []string{"ok", "duplicate", "failed", "dropped", "late"} {
		m.HistoryWrites.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error", "busy"} {
		m.HistoryQueries.WithLabelValues(r)
	}
	return m
}

// exchangeGauges is pongcast_exchanges{status}: at each scrape, the sum
// of the status counts of the trackers of every server using this
// Metrics. Read from the trackers, not kept by increments, the gauges
// are right whatever happened to an exchange (forgotten ones included),
// and a server that shut down leaves nothing behind in a Metrics another
// server of the process goes on using.
type exchangeGauges struct {
	mu       sync.Mutex
	trackers map[*health.Tracker]struct{}
}

var exchangesDesc = prometheus.NewDesc("pongcast_exchanges",
	"Exchanges tracked now, by status (up, slow, down, stale).", []string{"status"}, nil)

// add counts t's exchanges in the gauges, until remove.
func (g *exchangeGauges) add(t *health.Tracker) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trackers[t] = struct{}{}
}

func (g *exchangeGauges) remove(t *health.Tracker) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.trackers, t)
}

// counts returns the exchanges by status now, over every tracker.
func (g *exchangeGauges) counts() map[health.Status]int {
	out := make(map[health.Status]int, len(health.Statuses))
	g.mu.Lock()
	defer g.mu.Unlock()
	for t := range g.trackers {
		c := t.Counts()
		for _, st := range health.Statuses {
			out[st] += c.Of(st)
		}
	}
	return out
}

func (g *exchangeGauges) Describe(ch chan<- *prometheus.Desc) { ch <- exchangesDesc }

// Collect exports every status, at 0 before its first exchange, so a
// dashboard sees zeros, not gaps.
func (g *exchangeGauges) Collect(ch chan<- prometheus.Metric) {
	counts := g.counts()
	for _, st := range health.Statuses {
		ch <- prometheus.MustNewConstMetric(exchangesDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}

// deliveryObserver counts what the client connections write and drop.
type deliveryObserver struct{ m *Metrics }

func (o deliveryObserver) Delivered(f *wsconn.Frame, at time.Time) {
	o.m.Delivered.Inc()
	o.m.DeliveryLatency.Observe(at.Sub(f.Received).Seconds())
}

func (o deliveryObserver) Dropped(n int) { o.m.Dropped.Add(float64(n)) }

func (o deliveryObserver) Conflated(n int) { o.m.Conflated.Add(float64(n)) }
