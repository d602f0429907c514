package hub

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// Sizing of the per-address handshake limiter.
const (
	// ipTableMax bounds the addresses tracked at once, about 120 bytes
	// each (12 MB in all; BenchmarkIPLimiterTable measures it).
	ipTableMax = 100_000
	// ipForgetPerCall bounds the entries one handshake may forget, so no
	// single call holds the lock for long; the table still shrinks far
	// faster than one handshake at a time can grow it.
	ipForgetPerCall = 64
	// DefaultHandshakeIPv6Prefix groups IPv6 clients by /64: one host
	// commonly holds a whole /64, so a /128 is no identity.
	DefaultHandshakeIPv6Prefix = 64
)

// ipLimiter is a token bucket per client address: an IPv4 address, or an
// IPv6 address cut to its first v6Bits bits. Buckets sit in a table of at
// most max entries, in order of use. An entry untouched for as
// long as an empty bucket takes to fill is worth nothing (a new bucket
// would be as full), so it is forgotten; nothing else ever is. When the
// table is full of buckets still in use, every address it cannot hold
// shares one overflow bucket: a flood of fresh addresses is limited as one
// address, and those already tracked keep their own.
type ipLimiter struct {
	perSecond float64
	burst     float64
	refill    time.Duration
	v6Bits    int
	max       int
	epoch     time.Time // bucket times are offsets from it

	mu       sync.Mutex
	table    map[netip.Addr]*useNode[ipBucket]
	recent   byUse[ipBucket]
	overflow ipBucket
}

// ipBucket is one address's tokens as of last.
type ipBucket struct {
	key    netip.Addr
	tokens float64
	last   time.Duration // since the limiter's epoch
}

func newIPLimiter(perSecond float64, burst, v6Bits int, now time.Time) *ipLimiter {
	l := &ipLimiter{
		perSecond: perSecond,
		burst:     float64(burst),
		refill:    refillTime(float64(burst), perSecond),
		v6Bits:    v6Bits,
		max:       ipTableMax,
		epoch:     now,
		table:     make(map[netip.Addr]*useNode[ipBucket]),
	}
	l.recent.init()
	l.overflow.tokens = l.burst
	return l
}

// allow takes one token for ip at now. When there is none it says how
// long until there is, and whether ip was charged to the shared overflow
// bucket because the table was full.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) (ok bool, wait time.Duration, shared bool) {
	key := groupKey(ip, l.v6Bits)
	t := now.Sub(l.epoch)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetRefilledLocked(t)
	var b *ipBucket
	switch n := l.table[key]; {
	case n != nil:
		l.recent.touch(n)
		b = &n.v
	case len(l.table) >= l.max:
		b, shared = &l.overflow, true
	default:
		n = &useNode[ipBucket]{v: ipBucket{key: key, tokens: l.burst, last: t}}
		l.table[key] = n
		l.recent.add(n)
		b = &n.v
	}
	ok, wait = l.takeLocked(b, t)
	return ok, wait, shared
}

// takeLocked refills b for the time since it was last used and takes a
// token if there is one.
func (l *ipLimiter) takeLocked(b *ipBucket, t time.Duration) (bool, time.Duration) {
	if t > b.last {
		b.tokens = min(l.burst, b.tokens+(t-b.last).Seconds()*l.perSecond)
		b.last = t
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
}

// forgetRefilledLocked drops, oldest first, entries whose buckets have had
// time to fill up again. Entries are in order of last use and all fill at
// the same rate, so the first one still filling ends the walk.
func (l *ipLimiter) forgetRefilledLocked(t time.Duration) {
	for range ipForgetPerCall {
		oldest := l.recent.oldest()
		if oldest == nil || t-oldest.v.last < l.refill {
			return
		}
		l.recent.remove(oldest)
		delete(l.table, oldest.v.key)
	}
}

// size is the number of addresses tracked.
func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}

// refillTime is how long an empty bucket takes to fill, capped where a
// Duration would overflow (a rate so low means "never forget").
func refillTime(burst, perSecond float64) time.Duration {
	secs := burst / perSecond
	if secs >= float64(math.MaxInt64/int64(time.Second)) {
		return math.MaxInt64
	}
	return time.Duration(secs * float64(time.Second))
}
