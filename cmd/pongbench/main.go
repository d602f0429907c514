// Command pongbench is pongcast's load generator and latency meter. It
// uses the server exactly as users do: N WebSocket clients with real JWTs,
// subscriptions spread over K exchanges, and a publisher doing Redis
// PUBLISH at R pongs/s for D seconds. Each pong carries its send time in
// nanoseconds (the envelope keeps unknown fields), so every delivery's
// publish-to-receive latency is measured.
//
//	pongbench --clients 1000 --exchanges 1 --rate 50 --duration 20s --server-pid $(pgrep pongcast)
//	pongbench --mode seed --url ws://127.0.0.1:3001/ --clients 1000 --rate 50 --duration 20s
//
// It stops by itself. See BENCHMARKS.md for the workloads.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9/logging"

	"github.com/pongcast/pongcast/config"
)

// options are pongbench's settings.
type options struct {
	mode            string
	snapshot        bool
	url             string
	clients         int
	exchanges       int
	wildcard        bool
	rate            float64
	duration        time.Duration
	redisURL        string
	channel         string
	secret          []byte
	serverPID       int
	hold            time.Duration
	connectParallel int
	sourceIPs       int
	drain           time.Duration
	jsonOut         bool
	label           string

	soak          bool
	churn         float64
	sampleEvery   time.Duration
	metricsURL    string
	stableClients float64
	cpuProfile    string
}

func main() {
	// go-redis's own log lines (dial failures, with a pool.go prefix)
	// would mix into the report; run returns the errors that matter.
	logging.Disable()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pongbench:", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var report any
	if o.soak {
		var r *soakReport
		if r, err = runSoak(ctx, o, stderr); r != nil {
			report = r
		}
	} else {
		var r *loadReport
		if r, err = runLoad(ctx, o, stderr); r != nil {
			report = r
		}
	}
	if report != nil {
		if o.jsonOut {
			// One line per report: easy to collect and to feed to jq.
			_ = json.NewEncoder(stdout).Encode(report)
		} else if t, ok := report.(interface{ table(io.Writer) }); ok {
			t.table(stdout)
		}
	}
	return err
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("pongbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.mode, "mode", "pongcast", "server kind: pongcast (JWT, ?exchanges=) or seed (the old Node.js broadcaster: no token, no subscribe)")
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:2808/ws", "server WebSocket URL")
	fs.IntVar(&o.clients, "clients", 1000, "WebSocket clients")
	fs.IntVar(&o.exchanges, "exchanges", 1, "exchanges K: client i subscribes to ex<i mod K>, and pongs go round-robin over them")
	fs.BoolVar(&o.wildcard, "wildcard", false, "every client subscribes to * instead")
	fs.BoolVar(&o.snapshot, "snapshot", false, "pongcast: publish one pong per exchange before connecting, and report each client's time from dial to its snapshot (the first message after subscribed)")
	fs.Float64Var(&o.rate, "rate", 50, "pongs published per second (0: connect only)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long to publish")
	fs.StringVar(&o.redisURL, "redis-url", envOr(getenv, "PONGCAST_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis to publish to (env PONGCAST_REDIS_URL)")
	fs.StringVar(&o.channel, "channel", envOr(getenv, "PONGCAST_CHANNEL", "exchange:pong"), "Pub/Sub channel (env PONGCAST_CHANNEL)")
	secretFile := fs.String("jwt-secret-file", getenv("PONGCAST_JWT_SECRET_FILE"), "HMAC secret file for the clients' tokens (env PONGCAST_JWT_SECRET_FILE, or the secret in PONGCAST_JWT_SECRET)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server process id, to report its RSS and CPU")
	fs.DurationVar(&o.hold, "hold", 0, "after the last connect, hold the idle connections this long before reading the server's RSS")
	fs.IntVar(&o.connectParallel, "connect-parallel", 64, "handshakes in flight at once")
	fs.IntVar(&o.sourceIPs, "source-ips", 0, "spread clients over this many source addresses 127.0.0.1..n (0: one per 15,000 clients)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "after the last publish, wait at most this long for deliveries")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&o.label, "label", "", "workload name for the report")
	fs.BoolVar(&o.soak, "soak", false, "soak mode: clients churn for --duration while pongs flow; samples RSS and goroutines")
	fs.Float64Var(&o.churn, "churn", 0.02, "soak: fraction of the churning clients replaced every second")
	fs.Float64Var(&o.stableClients, "stable", 0.5, "soak: fraction of clients that never churn (their losses must be 0)")
	fs.DurationVar(&o.sampleEvery, "sample", 10*time.Second, "soak: sampling period")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "soak: server /metrics URL, for its goroutine count")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write pongbench's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.mode != "pongcast" && o.mode != "seed":
		return nil, fmt.Errorf("--mode: want pongcast or seed, got %q", o.mode)
	case o.snapshot && o.mode != "pongcast":
		return nil, errors.New("--snapshot: only pongcast sends snapshots")
	case o.clients < 1:
		return nil, errors.New("--clients must be >= 1")
	case o.exchanges < 1:
		return nil, errors.New("--exchanges must be >= 1")
	case o.rate < 0:
		return nil, errors.New("--rate must be >= 0")
	case o.connectParallel < 1:
		return nil, errors.New("--connect-parallel must be >= 1")
	}
	if o.mode == "pongcast" {
		// The same secret sources as the server's.
		secret, err := config.SecretFromEnvOrFile(getenv("PONGCAST_JWT_SECRET"), *secretFile)
		if err != nil {
			return nil, err
		}
		if len(secret) == 0 {
			return nil, errors.New("pongcast mode needs the server's HMAC secret: PONGCAST_JWT_SECRET or --jwt-secret-file")
		}
		o.secret = secret
	}
	if o.sourceIPs == 0 {
		o.sourceIPs = (o.clients + 14999) / 15000
	}
	return o, nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
