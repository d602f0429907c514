package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
)

// Server is a running pongcast: the hub, the Redis feed and the HTTP
// endpoints. Create it with NewServer, serve its Handler, call Run for the
// feed, and Shutdown to close every client.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	hub     *Hub
	feed    *Feed // nil without a RedisURL
	// snaps shares the newest pong of each exchange with every instance
	// through Redis; nil without a RedisURL, like snapClient, its own
	// client, which the revocation loads borrow (newSnapshotClient).
	snaps      *snapshotStore
	snapClient *redis.Client
	running    atomic.Bool // Run has begun: it closes snapClient, not Shutdown
	accept     websocket.AcceptOptions
	conns      wsconn.Config // shared by every client connection
	mux        *http.ServeMux

	// history records every pong in Redis Streams; nil without a
	// RedisURL or with history off, like its clients.
	history       *historyStore
	historyWriter *redis.Client
	historyReader *redis.Client

	// wg counts the sessions' readers; each waits for its connection's
	// writer before it is done.
	wg      sync.WaitGroup
	nextID  atomic.Uint64
	closing atomic.Bool

	watchdog     *watchdog
	healthTimer  *healthTimer
	admission    *admission
	rejectLog    *logLimiter
	proxyLog     *logLimiter
	ipTableLog   *logLimiter
	refusalLog   *logLimiter // refused handshakes, at debug
	originLog    *logLimiter
	untrackedLog *logLimiter // pongs of exchanges past the bound
	origins      originPolicy
	pending      *pendingGate
	pendingLog   *logLimiter
	// The token lifecycle (tokenlife.go, unauth.go, revocation.go).
	unauth            *unauthGate
	revocations       *revocationList
	reloadRevocations chan struct{}
	sweeper           *revocationSweeper
}

// NewServer checks opts and builds a Server. It does not connect to Redis:
// Run does, and keeps trying. It starts one housekeeping goroutine, which
// Shutdown stops: call Shutdown when done with the Server.
func NewServer(opts Options) (*Server, error) {
	if opts.Verifier == nil {
		return nil, errors.New("hub: Options.Verifier is required")
	}
	opts = opts.withDefaults()
	if opts.SlowClient != SlowClientClose && opts.SlowClient != SlowClientConflate {
		return nil, fmt.Errorf("hub: Options.SlowClient is %q, want %q or %q", opts.SlowClient, SlowClientClose, SlowClientConflate)
	}
	s := &Server{
		opts:         opts,
		log:          opts.Logger,
		metrics:      opts.Metrics,
		admission:    newAdmission(opts),
		rejectLog:    newLogLimiter(time.Second, 5),
		proxyLog:     newLogLimiter(time.Minute, 1),
		ipTableLog:   newLogLimiter(time.Minute, 1),
		refusalLog:   newLogLimiter(time.Second, 5),
		originLog:    newLogLimiter(time.Second, 5),
		untrackedLog: newLogLimiter(time.Minute, 1),
		accept: websocket.AcceptOptions{
			// Origins are checked before the upgrade (origin.go), so the
			// refusal is ours: JSON, logged and counted.
			InsecureSkipVerify: true,
			CompressionMode:    websocket.CompressionDisabled,
		},
	}
	s.unauth = newUnauthGate(opts)
	s.revocations = newRevocationList(opts)
	s.reloadRevocations = make(chan struct{}, 1)
	var err error
	if s.origins, err = newOriginPolicy(opts.AllowedOrigins); err != nil {
		return nil, fmt.Errorf("allowed origins: %w", err)
	}
	tracker, err := health.NewTracker(health.Config{
		MaxExchanges: opts.MaxExchanges, StaleAfter: opts.StaleAfter, LatencyAlertMs: opts.LatencyAlertMs})
	if err != nil {
		return nil, fmt.Errorf("hub: exchange health: %w", err)
	}
	s.hub = newHub(opts.Metrics, opts.MaxSubscriptions, tracker)
	if opts.RedisURL != "" {
		ropts, err := redis.ParseURL(opts.RedisURL)
		if err != nil {
			// Not err: it quotes the URL, password and all.
			return nil, errors.New("hub: Options.RedisURL is not a valid Redis URL (not shown: it may hold a password)")
		}
		s.feed = newFeed(s.route, s.log, s.metrics, ropts, opts.Channel)
		s.feed.control, s.feed.onControl, s.feed.controlLive = RevocationsChannel(opts.KeyPrefix), s.onRevocation, s.controlLive
		s.snapClient = newSnapshotClient(ropts)
		s.snaps = newSnapshotStore(s.snapClient, opts.KeyPrefix, snapshotStoreOptions{
			MaxExchanges: opts.MaxExchanges, MaxMessageBytes: opts.MaxMessageBytes, ForgetAfter: tracker.Horizon(), Logger: s.log})
		// Servers sharing one Metrics (a restart in the same process)
		// keep the first one's snapshot counters.
		if err := s.metrics.Registry.Register(s.snaps.Collector()); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			_ = s.snapClient.Close()
			return nil, fmt.Errorf("hub: snapshot metrics: %w", err)
		}
		if opts.HistoryLen > 0 {
			s.historyWriter = newHistoryClient(ropts, 1)
			s.historyReader = newHistoryClient(ropts, historyQueryPool)
			s.history = newHistoryStore(s.historyWriter, s.historyReader, opts.KeyPrefix, opts.HistoryLen, opts.MaxMessageBytes, s.log, s.metrics)
		}
	}
	s.conns = wsconn.Config{
		SendQueue:       opts.SendQueue,
		Conflate:        opts.SlowClient == SlowClientConflate,
		WriteTimeout:    opts.WriteTimeout,
		CloseTimeout:    closeHandshakeTimeout,
		PingInterval:    opts.PingInterval,
		MessageTimeout:  opts.MessageTimeout,
		MaxMessageBytes: opts.MaxMessageBytes,
		Observer:        deliveryObserver{s.metrics},
	}
	// Counted in pongcast_exchanges{status} until Shutdown.
	s.metrics.exchanges.add(tracker)
	s.pendingLog = newLogLimiter(10*time.Second, 1)
	s.pending = newPendingGate(opts, s.log, s.refusePending)
	s.startWatchdog()
	s.startRevocationSweeper()
	s.startHealthTimer()
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.serveWS)
	s.mux.HandleFunc("GET /ws", s.serveWS)
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.HandleFunc("GET /v1/exchanges", s.serveExchanges)
	s.mux.HandleFunc("GET /v1/exchanges/{name}", s.serveExchanges)
	s.mux.HandleFunc("GET /v1/exchanges/{name}/history", s.serveHistory)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	return s, nil
}

// refusePending counts and logs a connection closed by the pending gate:
// refused for its address's cap (pending_ip), or the longest waiting one,
// closed to make room under the total (pending_full).
func (s *Server) refusePending(reason admitReason) {
	s.metrics.HandshakeRefusals.WithLabelValues(string(reason)).Inc()
	s.pendingLog.log(s.log, slog.LevelWarn, "connections closed: too many not yet upgraded",
		"reason", reason, "max_pending", s.opts.MaxPending, "max_pending_per_ip", s.opts.MaxPendingPerIP)
}

// ServeHTTP serves the WebSocket endpoint on / and /ws, and /healthz,
// /readyz and /metrics. No response is to be sniffed as something else
// (a refusal may quote the client's input).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// Run keeps the Redis subscription alive until ctx ends. Without a
// RedisURL it just waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.feed == nil {
		<-ctx.Done()
		return nil
	}
	s.running.Store(true)
	var writer sync.WaitGroup
	defer s.closeStoreClients() // after the writers are done
	defer writer.Wait()
	writer.Add(2)
	go func() {
		defer writer.Done()
		s.snaps.Run(ctx)
	}()
	if s.history != nil {
		writer.Add(1)
		go func() {
			defer writer.Done()
			s.history.Run(ctx)
		}()
	}
	go func() {
		defer writer.Done()
		s.runRevocations(ctx)
	}()
	s.loadSnapshots(ctx)
	return s.feed.run(ctx)
}

// snapshotLoadTimeout bounds the start-up read of the shared snapshots: a
// Redis that does not answer must not hold the feed back.
const snapshotLoadTimeout = 3 * time.Second

// loadSnapshots merges the snapshots other instances (or an earlier run)
// left in Redis, so a fresh instance serves them at once. What it could
// read before an error is merged all the same; newest wins either way.
func (s *Server) loadSnapshots(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, snapshotLoadTimeout)
	defer cancel()
	stored, err := s.snaps.LoadAll(lctx)
	s.rebuildFromHistory(ctx, stored) // before the merge: the history's own snapshots are no newer
	for _, sn := range stored {
		s.hub.health.Merge(sn.Exchange, sn.Envelope, sn.Received)
	}
	if err != nil {
		s.log.Warn("shared snapshots not loaded; they fill again from the next pongs", "loaded", len(stored), "error", err)
		return
	}
	s.log.Info("shared snapshots loaded", "exchanges", len(stored))
}

// closeStoreClients closes the clients of the snapshot and history
// stores.
func (s *Server) closeStoreClients() {
	_ = s.snapClient.Close()
	if s.history != nil {
		_ = s.historyWriter.Close()
		_ = s.historyReader.Close()
	}
}

// Ready reports whether the server can deliver pongs: the Redis
// subscription is live and the revocation list has been loaded once
// (always true without a RedisURL).
func (s *Server) Ready() bool {
	return !s.closing.Load() && (s.feed == nil || s.feed.ready.Load() && s.revocations.isLoaded())
}

// Clients returns the number of connected clients.
func (s *Server) Clients() int { return s.hub.count() }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Publish validates one payload as if it arrived on the Redis channel and
// routes it. It returns the *protocol.PongError of an invalid pong.
func (s *Server) Publish(payload []byte) error {
	return s.route(payload, time.Now())
}

// Shutdown stops accepting clients, closes every client with 1001 after
// flushing what is queued to it, and waits for their goroutines. When ctx
// (or DefaultShutdownTimeout, if ctx has no deadline) ends first, the
// remaining connections are dropped without a handshake.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultShutdownTimeout)
		defer cancel()
	}
	// This server's exchanges leave the gauges with it, so a Metrics
	// another server goes on using (a restart in the same process) shows
	// that one's alone.
	s.metrics.exchanges.remove(s.hub.health)
	clients := s.hub.closeAll()
	for _, c := range clients {
		c.conn.Close(causeShutdown)
	}
	s.log.Info("closing clients", "clients", len(clients))
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	defer s.watchdog.close()
	defer s.sweeper.close()
	defer s.healthTimer.close()
	if s.snapClient != nil && !s.running.Load() {
		s.closeStoreClients() // go-redis starts goroutines of its own
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range clients {
		c.conn.CloseNow(causeShutdown)
	}
	select {
	case <-done:
	case <-time.After(time.Second):
		return errors.New("hub: shutdown: client goroutines did not exit")
	}
	return fmt.Errorf("hub: shutdown: %w (clients dropped without a close handshake)", ctx.Err())
}
