package hub

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Feed timings.
const (
	// feedHealthInterval is how long the subscription may stay silent
	// before it is pinged; a ping unanswered for as long again means the
	// connection is dead even if TCP has not noticed.
	feedHealthInterval = 5 * time.Second
	feedBackoffMin     = 100 * time.Millisecond
	feedBackoffMax     = 5 * time.Second
)

// Feed holds the Redis subscription to the pong channel and hands each
// message to its sink. It reconnects with jittered exponential backoff
// for as long as it runs.
type Feed struct {
	sink    func(payload []byte, received time.Time) error
	log     *slog.Logger
	metrics *Metrics
	opts    *redis.Options
	channel string
	ready   atomic.Bool
	errLog  *logLimiter
	// wasLive is set once the subscription has been live: from then on,
	// its coming back counts as a reconnection. Only run uses it.
	wasLive bool
}

func newFeed(sink func([]byte, time.Time) error, log *slog.Logger, metrics *Metrics, opts *redis.Options, channel string) *Feed {
	o := *opts
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	// The feed does its own retrying, with its own backoff and logging.
	o.MaxRetries = -1
	o.PoolSize = 2
	return &Feed{sink: sink, log: log, metrics: metrics, opts: &o, channel: channel, errLog: newLogLimiter(10*time.Second, 3)}
}

func (f *Feed) setReady(ready bool) {
	if f.ready.Swap(ready) == ready {
		return
	}
	if ready {
		if f.wasLive {
			f.metrics.RedisReconnects.Inc()
		}
		f.wasLive = true
		f.metrics.RedisUp.Set(1)
		f.log.Info("redis subscription live", "addr", f.opts.Addr, "channel", f.channel)
	} else {
		f.metrics.RedisUp.Set(0)
	}
}

// run subscribes and receives until ctx ends, reconnecting on any failure.
func (f *Feed) run(ctx context.Context) error {
	client := redis.NewClient(f.opts)
	defer client.Close()
	backoff := feedBackoffMin
	for ctx.Err() == nil {
		started := time.Now()
		err := f.receive(ctx, client)
		f.setReady(false)
		if ctx.Err() != nil {
			break
		}
		if time.Since(started) > time.Minute {
			backoff = feedBackoffMin // it had been healthy: retry quickly
		}
		f.errLog.log(f.log, slog.LevelWarn, "redis subscription lost; retrying",
			"addr", f.opts.Addr, "error", err, "retry_in", backoff)
		// Full jitter keeps many instances from reconnecting in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			f.metrics.RedisReconnectAttempts.Inc()
		}
		backoff = min(backoff*2, feedBackoffMax)
	}
	return nil
}

// receive runs one subscription until it fails or ctx ends.
func (f *Feed) receive(ctx context.Context, client *redis.Client) error {
	ps := client.Subscribe(ctx, f.channel)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	pingOutstanding := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, feedHealthInterval)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			if pingOutstanding {
				return errors.New("redis did not answer a ping on the subscription")
			}
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pingOutstanding = true
			continue
		}
		pingOutstanding = false
		switch m := msg.(type) {
		case *redis.Message:
			// The payload arrived now: latency is measured from here.
			_ = f.sink([]byte(m.Payload), time.Now())
		case *redis.Subscription:
			if m.Channel == f.channel {
				f.setReady(m.Kind == "subscribe")
			}
		case *redis.Pong:
		}
	}
}
