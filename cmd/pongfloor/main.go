// Command pongfloor is the yardstick BENCHMARKS.md measures pongcast
// against: about the least a Redis-to-WebSocket broadcaster can do per
// pong on a given machine. It has no authentication, no routing, no
// limits and no validation. For each message on the channel it builds one
// frame, and one worker per core writes that frame to its share of the
// sockets with plain blocking writes. Comparing pongcast with it in the
// same run separates what pongcast's own work costs from what the kernel
// and the machine cost, which no absolute figure can do on a noisy host.
//
//	pongfloor --addr 127.0.0.1:3002 --redis-url redis://127.0.0.1:6379/0 --channel exchange:pong
//	pongbench --mode seed --url ws://127.0.0.1:3002/ ...
//
// It is a measuring instrument, not a server to deploy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/pongcast/pongcast/config"
)

func main() {
	// go-redis's own log lines (dial failures, with a pool.go prefix)
	// would mix into the report; run returns the errors that matter.
	logging.Disable()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2).
type usageError struct{ error }

// run serves until ctx ends. started, if not nil, is called with the
// listen address once the channel is subscribed and the listener is open.
func run(ctx context.Context, args []string, stderr io.Writer, started func(addr string)) error {
	fs := flag.NewFlagSet("pongfloor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:3002", "listen address")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis to subscribe to")
	channel := fs.String("channel", "exchange:pong", "Pub/Sub channel of the pongs")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "write workers (default: one per core)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("pongfloor: unexpected arguments: %v", fs.Args())}
	}
	if *workers < 1 {
		return usageError{fmt.Errorf("pongfloor: --workers must be at least 1, got %d", *workers)}
	}
	opts, err := config.ParseRedisURL(*redisURL)
	if err != nil {
		return usageError{fmt.Errorf("pongfloor: --redis-url: %w", err)}
	}

	rdb := redis.NewClient(opts)
	defer rdb.Close()
	sub := rdb.Subscribe(ctx, *channel)
	defer sub.Close()
	subCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = sub.Receive(subCtx) // the subscribe confirmation
	cancel()
	if err != nil {
		// opts.Addr: the URL may hold a password.
		return fmt.Errorf("pongfloor: subscribe to %q at %s: %w", *channel, opts.Addr, err)
	}

	b := newBroadcaster(*workers)
	defer b.close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("pongfloor: %w", err)
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if started != nil {
		started(ln.Addr().String())
	}

	msgs := sub.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			_ = srv.Close() // hijacked sockets are closed by b.close
			<-served
			return nil
		case err := <-served:
			return fmt.Errorf("pongfloor: %w", err)
		case m, ok := <-msgs:
			if !ok {
				return errors.New("pongfloor: the Redis subscription ended")
			}
			b.broadcast([]byte(m.Payload))
		}
	}
}
