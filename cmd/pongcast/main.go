// Command pongcast serves exchange pongs from Redis to authenticated
// WebSocket clients. See README.md for the settings and the protocol.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/config"
	"github.com/pongcast/pongcast/hub"
)

// shutdownBudget is how long closing clients may take; with the HTTP
// server's own drain it keeps the whole exit under the contract's 10 s.
const shutdownBudget = 7 * time.Second

func main() {
	// go-redis logs its own dial failures through a global logger; route
	// them to debug level, since the feed reports failures itself, once,
	// rate-limited.
	redis.SetLogger(&redisLog)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil)
	var settings *config.SettingsError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &settings):
		// Every bad setting is listed: the usage would bury them.
		fmt.Fprintf(os.Stderr, "%v\n%s\n", err, settingsHint)
		os.Exit(exitSettings)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// exitSettings is the exit status on bad settings, as on a bad command
// line; 1 is for a server that could not start or stopped on an error.
const exitSettings = 2

// settingsHint follows the list of bad settings.
const settingsHint = "run pongcast --help for all settings"

// run is the whole server: it returns when ctx ends (after a graceful
// shutdown) or when it cannot start. started, if not nil, is called with
// the listen address once the server accepts connections.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, started func(addr string)) error {
	cfg, err := config.Load(args, getenv, stdout) // --help, asked for, goes to stdout
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	redisLog.logger.Store(log)

	var dev *devEnv
	if cfg.Dev {
		if dev, err = startDev(cfg, getenv, log); err != nil {
			return err
		}
		defer dev.Close()
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		HMACSecret:   cfg.JWTSecret,
		PublicKeyPEM: cfg.JWTPublicKey,
		Issuer:       cfg.JWTIssuer,
		Audience:     cfg.JWTAudience,
	})
	if err != nil {
		return fmt.Errorf("pongcast: %w", err)
	}
	origins := cfg.AllowedOrigins
	if cfg.Dev && len(origins) == 0 {
		origins = hub.DevOrigins // pages on localhost and 127.0.0.1 alike
	}
	srv, err := hub.NewServer(hub.Options{
		Verifier:              verifier,
		RedisURL:              cfg.RedisURL,
		Channel:               cfg.Channel,
		KeyPrefix:             cfg.KeyPrefix,
		AllowedOrigins:        origins,
		MaxMessageBytes:       cfg.MaxMessageBytes,
		ClientRate:            cfg.ClientRate,
		ClientBurst:           cfg.ClientBurst,
		SendQueue:             cfg.SendQueue,
		SlowClient:            hub.SlowClientPolicy(cfg.SlowClient),
		MaxSubscriptions:      cfg.MaxSubscriptions,
		WriteTimeout:          cfg.WriteTimeout,
		MessageTimeout:        cfg.MessageTimeout,
		PingInterval:          cfg.PingInterval,
		MaxConnections:        cfg.MaxConnections,
		MaxConnectionsPerUser: cfg.MaxConnectionsPerUser,
		HandshakeRate:         cfg.HandshakeRate,
		HandshakeBurst:        cfg.HandshakeBurst,
		TrustedProxies:        cfg.TrustedProxies,
		HandshakeIPv6Prefix:   cfg.HandshakeIPv6Prefix,
		MaxPending:            cfg.MaxPending,
		MaxPendingPerIP:       cfg.MaxPendingPerIP,
		SubscribeAllOnConnect: cfg.SubscribeOnConnect == "all",
		StaleAfter:            cfg.StaleAfter,
		LatencyAlertMs:        cfg.LatencyAlertMs,
		MaxExchanges:          cfg.MaxExchanges,
		HistoryLen:            historyLen(cfg.HistoryLen),
		AuthTimeout:           cfg.AuthTimeout,
		MaxRevocations:        cfg.MaxRevocations,
		Logger:                log,
	})
	if err != nil {
		return fmt.Errorf("pongcast: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("pongcast: listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	ln = srv.Listen(ln, httpSrv) // caps the connections not yet upgraded

	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopDebug()
	}

	feedCtx, stopFeed := context.WithCancel(context.Background())
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		_ = srv.Run(feedCtx)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	addr := ln.Addr().String()
	log.Info("pongcast listening", "addr", addr, "channel", cfg.Channel, "algorithms", verifier.Algorithms(), "dev", cfg.Dev)
	if dev != nil {
		dev.printWelcome(stdout, addr, cfg)
	}
	if started != nil {
		started(addr)
	}

	var result error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		result = fmt.Errorf("pongcast: serve: %w", err)
	}

	// Stop accepting, close every client with 1001, then stop the feed.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Shutdown(shutdownCtx) }()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown incomplete", "error", err)
	}
	if err := <-httpDone; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "error", err)
	}
	stopFeed()
	<-feedDone
	log.Info("stopped")
	return result
}

// redisLogger adapts go-redis's internal logging to slog at debug level.
type redisLogger struct{ logger atomic.Pointer[slog.Logger] }

var redisLog redisLogger

func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if log := l.logger.Load(); log != nil && log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("redis client", "detail", fmt.Sprintf(format, v...))
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// historyLen is the setting as hub.Options takes it: there zero is the
// default, and off is negative.
func historyLen(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
