package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
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
	// feedProblemEvery is how often one problem that retrying cannot mend
	// is logged again while it lasts: it keeps failing every few seconds.
	feedProblemEvery = time.Minute
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
	// problemLogged is when each problem (by its text) was last logged,
	// since the subscription was last live. Only run uses it.
	problemLogged map[string]time.Time
	// control, if set, is a second channel on the same subscription (the
	// revocation announcements): its messages go to onControl, and
	// controlLive is told each time its subscription is confirmed. One
	// connection, one reconnect path for both. Set before run.
	control     string
	onControl   func(payload []byte)
	controlLive func()
}

func newFeed(sink func([]byte, time.Time) error, log *slog.Logger, metrics *Metrics, opts *redis.Options, channel string) *Feed {
	o := *opts
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	// The feed does its own retrying, with its own backoff and logging.
	o.MaxRetries = -1
	o.PoolSize = 2
	return &Feed{sink: sink, log: log, metrics: metrics, opts: &o, channel: channel,
		errLog: newLogLimiter(10*time.Second, 3), problemLogged: make(map[string]time.Time)}
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
		clear(f.problemLogged) // a problem that comes back is news again
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
		f.reportFailure(err, backoff)
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

// reportFailure logs why the subscription failed. A failure that only a
// change of settings can mend is logged at error level, saying what to
// check, once a minute while it lasts; others are the usual rate-limited
// warning. Either way the feed keeps trying: the setting may be fixed on
// the Redis side (a password, an ACL) without a restart of pongcast.
func (f *Feed) reportFailure(err error, retryIn time.Duration) {
	p, ok := diagnoseRedis(err, f.opts, f.channel)
	if !ok {
		f.errLog.log(f.log, slog.LevelWarn, "redis subscription lost; retrying",
			"addr", f.opts.Addr, "error", err, "retry_in", retryIn)
		return
	}
	now := time.Now()
	if last, ok := f.problemLogged[p.text]; ok && now.Sub(last) < feedProblemEvery {
		return
	}
	f.problemLogged[p.text] = now
	// The message is the advice itself, for the person who reads it; the
	// problem attribute is the constant to search and alert on.
	f.log.Error(p.text, "problem", p.kind, "addr", f.opts.Addr, "error", err, "retry_in", retryIn)
}

// receive runs one subscription until it fails or ctx ends.
func (f *Feed) receive(ctx context.Context, client *redis.Client) error {
	// The control channel first: its confirmation (controlLive, which
	// makes the server unready until the revocation list is loaded anew)
	// then comes before the pong channel's makes the feed ready.
	channels := []string{f.channel}
	if f.control != "" {
		channels = []string{f.control, f.channel}
	}
	ps := client.Subscribe(ctx, channels...)
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
			if f.control != "" && m.Channel == f.control {
				f.onControl([]byte(m.Payload))
				continue
			}
			// The payload arrived now: latency is measured from here.
			_ = f.sink([]byte(m.Payload), time.Now())
		case *redis.Subscription:
			if m.Channel == f.channel {
				f.setReady(m.Kind == "subscribe")
			}
			if f.control != "" && m.Channel == f.control && m.Kind == "subscribe" {
				f.controlLive()
			}
		case *redis.Pong:
		}
	}
}

// redisProblem is a failure of the subscription that retrying will not
// mend: a setting, or the Redis server's own configuration, is wrong and
// someone has to change it.
type redisProblem struct {
	// kind names the problem, a constant for the log's problem attribute.
	kind string
	// text says what is wrong and what to check. It names the server by
	// host and port only, never with the password.
	text string
}

// redisURLSetting is the setting most problems point at.
const redisURLSetting = "--redis-url (PONGCAST_REDIS_URL)"

// diagnoseRedis tells a failure that retrying will not mend from one that
// it may (Redis down, restarting, loading, the network), which it leaves
// alone.
func diagnoseRedis(err error, opts *redis.Options, channel string) (redisProblem, bool) {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return redisProblem{"host_not_found",
			fmt.Sprintf("redis: host %s not found: check the host in %s", dnsErr.Name, redisURLSetting)}, true
	}
	var redisErr redis.Error
	if errors.As(err, &redisErr) {
		return diagnoseRedisReply(redisErr.Error(), opts, channel)
	}
	var recordErr tls.RecordHeaderError
	if errors.As(err, &recordErr) {
		return redisProblem{"not_tls", fmt.Sprintf("redis: %s does not answer in TLS: use redis:// instead of rediss:// in %s, or the server's TLS port",
			opts.Addr, redisURLSetting)}, true
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return redisProblem{"tls_certificate", fmt.Sprintf("redis: the TLS certificate of %s is not trusted: check the host in %s and that the certificate's CA is one this machine trusts",
			opts.Addr, redisURLSetting)}, true
	}
	// The TLS handshake timed out on a connection that was made: a plain
	// Redis, which waits for a line that a ClientHello never ends. (A dial
	// that timed out is a *net.OpError.)
	var opErr *net.OpError
	if opts.TLSConfig != nil && errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &opErr) {
		return redisProblem{"tls_no_answer", fmt.Sprintf("redis: %s does not answer the TLS handshake: if it does not use TLS, use redis:// instead of rediss:// in %s",
			opts.Addr, redisURLSetting)}, true
	}
	// What go-redis says when the first reply is not RESP at all.
	if msg := err.Error(); strings.HasPrefix(msg, "redis: invalid reply") || strings.HasPrefix(msg, "redis: can't parse") {
		return redisProblem{"not_redis", fmt.Sprintf("redis: %s does not answer as a Redis server: check the host and port in %s",
			opts.Addr, redisURLSetting)}, true
	}
	return redisProblem{}, false
}

// diagnoseRedisReply is diagnoseRedis for an error reply of the server's.
func diagnoseRedisReply(msg string, opts *redis.Options, channel string) (redisProblem, bool) {
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "ERR invalid password"),
		strings.HasPrefix(msg, "ERR invalid username-password pair"):
		return redisProblem{"auth_failed",
			"redis: authentication failed (WRONGPASS): check the user and password in " + redisURLSetting}, true
	case strings.HasPrefix(msg, "NOAUTH"):
		return redisProblem{"auth_required",
			"redis: the server wants a password (NOAUTH): give the user and password in " + redisURLSetting + ", as redis://user:password@host:port/db"}, true
	case strings.Contains(msg, "no password is set"), strings.Contains(msg, "without any password configured"):
		return redisProblem{"no_password_set",
			"redis: a password was given but the server has none: remove it from " + redisURLSetting + ", or set one on the server"}, true
	case strings.HasPrefix(msg, "ERR DB index is out of range"):
		return redisProblem{"db_out_of_range", fmt.Sprintf("redis: database %d does not exist on this server (ERR DB index is out of range): use a smaller /db in %s",
			opts.DB, redisURLSetting)}, true
	case strings.HasPrefix(msg, "NOPERM"):
		return redisProblem{"no_permission", fmt.Sprintf("redis: the Redis user may not subscribe to channel %s (NOPERM): allow it in the server's ACL (+subscribe and &%s), or use another user in %s",
			channel, channel, redisURLSetting)}, true
	case strings.HasPrefix(msg, "ERR unknown command"):
		return redisProblem{"unknown_command",
			"redis: the server does not know a command pongcast needs (ERR unknown command): " + redisURLSetting + " must name a Redis with Pub/Sub"}, true
	}
	return redisProblem{}, false
}
