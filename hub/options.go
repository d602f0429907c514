package hub

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/protocol"
)

// Defaults for zero Options fields.
const (
	DefaultClientRate       = 10
	DefaultClientBurst      = 20
	DefaultSendQueue        = 256
	DefaultMaxSubscriptions = 100
	DefaultWriteTimeout     = 10 * time.Second
	DefaultChannel          = "exchange:pong"
	DefaultKeyPrefix        = "pongcast:"
	DefaultMessageTimeout   = 10 * time.Second
	DefaultHistoryLen       = 10000
	// DefaultMaxRevocations bounds the revocation entries one server
	// holds (about 217 bytes each with 32-character jtis: 21.7 MB; BenchmarkRevocationListMemory).
	DefaultMaxRevocations = 100_000
	// DefaultShutdownTimeout bounds Shutdown when its context has no
	// earlier deadline; the contract allows 10 s for the whole exit.
	DefaultShutdownTimeout = 8 * time.Second
)

// SlowClientPolicy is what becomes of a client whose send queue is full.
type SlowClientPolicy string

const (
	// SlowClientClose closes it with 1008 "slow consumer".
	SlowClientClose SlowClientPolicy = "close"
	// SlowClientConflate keeps it: its queue keeps only the newest pong
	// of each exchange, and every reply, up to twice SendQueue frames; a
	// client whose replies alone fill SendQueue, or whose newest pongs
	// pass the double, is still closed.
	SlowClientConflate SlowClientPolicy = "conflate"
)

// Refusal window: a client refused more than ClientBurst times within it is
// closed.
const rateRefusalWindow = 10 * time.Second

// closeHandshakeTimeout is how long a client has to answer our close
// frame once it is out, before the socket is dropped.
const closeHandshakeTimeout = 5 * time.Second

// Options configure a Server. Verifier is required; every other zero value
// means the default named in its comment.
type Options struct {
	// Verifier checks every client's token. Required.
	Verifier *auth.Verifier
	// RedisURL is the Redis to subscribe to. If empty, the feed is not
	// started and only Publish delivers pongs (tests, embedding).
	RedisURL string
	// Channel is the Pub/Sub channel. If empty, DefaultChannel.
	Channel string
	// KeyPrefix begins every Redis key the server keeps (the snapshot
	// hash is KeyPrefix+"snapshots", the history streams
	// KeyPrefix+"history:{<exchange>}"). If empty, DefaultKeyPrefix.
	KeyPrefix string
	// AllowedOrigins are browser Origin host patterns (path.Match); "*"
	// allows any origin. If empty, only same-origin browsers may connect.
	AllowedOrigins []string
	// MaxMessageBytes caps messages both ways. If zero,
	// protocol.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// ClientRate is client messages per second. If zero, DefaultClientRate.
	ClientRate float64
	// ClientBurst is the token bucket size. If zero, DefaultClientBurst.
	ClientBurst int
	// SendQueue is the per-client queue length. If zero, DefaultSendQueue.
	SendQueue int
	// SlowClient is what becomes of a client whose queue is full. If
	// empty, SlowClientClose.
	SlowClient SlowClientPolicy
	// MaxSubscriptions bounds one client's named subscriptions. If zero,
	// DefaultMaxSubscriptions.
	MaxSubscriptions int
	// WriteTimeout bounds one batch of writes to a client. If zero,
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MessageTimeout bounds how long one client message may take to
	// arrive once it has begun (fragments trickling in); past it the
	// client is closed with 1008. If zero, DefaultMessageTimeout; if
	// negative, no limit.
	MessageTimeout time.Duration
	// PingInterval is the keep-alive period: each client is pinged this
	// often and closed if it has not answered within the next period. If
	// zero, keep-alive is off.
	PingInterval time.Duration
	// MaxConnections bounds the clients connected at once; past it
	// handshakes get 503 with Retry-After. If zero, no limit.
	MaxConnections int
	// MaxConnectionsPerUser bounds the connections of one token subject;
	// past it handshakes get 429. If zero, no limit.
	MaxConnectionsPerUser int
	// HandshakeRate is the handshakes per second allowed from one client
	// IP, with HandshakeBurst; past it handshakes get 429. If zero, no
	// limit.
	HandshakeRate  float64
	HandshakeBurst int
	// StaleAfter, LatencyAlertMs and MaxExchanges configure exchange
	// health (see package health): an exchange with no pong for
	// StaleAfter is stale, one whose latency is over LatencyAlertMs is
	// slow, and at most MaxExchanges exchanges are tracked. If zero, the
	// health package's defaults (120 s, 1000 ms, 1000).
	StaleAfter     time.Duration
	LatencyAlertMs int
	MaxExchanges   int
	// HistoryLen is about how many pongs each exchange's history stream
	// keeps (XADD MAXLEN ~). If zero, DefaultHistoryLen; if negative,
	// history is off: nothing written, history requests refused. History
	// needs a RedisURL.
	HistoryLen int
	// SubscribeAllOnConnect subscribes a connection that names no
	// exchanges at connect to every exchange its token allows, as "*"
	// would: the old broadcaster's behaviour, filtered by the token.
	SubscribeAllOnConnect bool
	// MaxPending caps the connections not (yet) upgraded to WebSockets,
	// and MaxPendingPerIP one address's share of them (trusted proxies
	// excepted). Past the cap per address a new connection is refused;
	// past the total, the one waiting longest is closed to make room.
	// These caps apply to listeners from Server.Listen. The same numbers
	// also cap, counted apart, the WebSocket connections made without a
	// token that have not sent their auth message yet, on any listener
	// (the handler counts them, see unauthGate). If zero, MaxPending is an
	// eighth of the file limit (16 to 1024) and MaxPendingPerIP a
	// quarter of MaxPending; negative means no cap.
	MaxPending      int
	MaxPendingPerIP int
	// HandshakeIPv6Prefix is how many leading bits of an IPv6 address
	// make one client for HandshakeRate (IPv4 addresses are each their
	// own). If zero, DefaultHandshakeIPv6Prefix.
	HandshakeIPv6Prefix int
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a client's IP. If empty, the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// AuthTimeout is how long a connection made without a token has to
	// send its auth message ({"type":"auth","token":...}); past it, or on
	// any other first message, it is closed with 1008. If zero,
	// first-message auth is off: a handshake without a token gets 401.
	AuthTimeout time.Duration
	// MaxRevocations bounds the revocation entries held; past it new ones
	// are counted and logged, not held (the connections they cover are
	// still closed when they are announced). If zero,
	// DefaultMaxRevocations.
	MaxRevocations int
	// Logger receives the server's logs. If nil, slog.Default().
	Logger *slog.Logger
	// Metrics is where counters go. If nil, NewMetrics(nil).
	Metrics *Metrics
}

func (o Options) withDefaults() Options {
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = protocol.DefaultMaxMessageBytes
	}
	if o.ClientRate == 0 {
		o.ClientRate = DefaultClientRate
	}
	if o.ClientBurst == 0 {
		o.ClientBurst = DefaultClientBurst
	}
	if o.SendQueue == 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.SlowClient == "" {
		o.SlowClient = SlowClientClose
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.HistoryLen == 0 {
		o.HistoryLen = DefaultHistoryLen
	}
	if o.MessageTimeout == 0 {
		o.MessageTimeout = DefaultMessageTimeout
	}
	if o.HandshakeRate > 0 && o.HandshakeBurst < 1 {
		o.HandshakeBurst = 1
	}
	if o.MaxPending == 0 {
		o.MaxPending = defaultMaxPending()
	}
	if o.MaxPendingPerIP == 0 {
		o.MaxPendingPerIP = -1 // no cap, like the total
		if o.MaxPending > 0 {
			o.MaxPendingPerIP = max(1, o.MaxPending/pendingShareOfAddress)
		}
	}
	if o.HandshakeIPv6Prefix <= 0 || o.HandshakeIPv6Prefix > 128 {
		o.HandshakeIPv6Prefix = DefaultHandshakeIPv6Prefix
	}
	if o.MaxRevocations == 0 {
		o.MaxRevocations = DefaultMaxRevocations
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return o
}
