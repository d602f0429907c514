package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/protocol"
)

// The history store appends every accepted pong to a Redis Stream per
// exchange, once across every instance, and reads it back for history
// requests and, at start, for the rolling statistics.
//
// Keys: the stream KeyPrefix+"history:{<exchange>}", each entry one field
// "env", the envelope the live clients got; beside it the de-dup set
// KeyPrefix+"history:{<exchange>}:recent", a sorted set of the content
// hashes of the pongs written in the last historyDedupWindow, scored by
// Redis's clock. Both share the hash tag {<exchange>}, so the one script
// that touches them stays in one slot of a Redis Cluster.
//
// Once: every instance receives every pong and runs the write script for
// it; the script, atomic in Redis, writes it only if its hash (128 bits
// of SHA-256 of the published payload, the same bytes at every instance,
// whereas the envelope's timestamp is each instance's own) is not in the
// recent set. Whichever instance comes first writes; the others find it
// there. No leader, nothing to hand over when an instance dies: a script
// runs wholly or not at all, and the others write what it did not. Each
// instance writes in the order it received the pongs (one writer), so the
// stream keeps publish order.
//
// Entry IDs: the ms part is the envelope's timestamp (the server receive
// time) when that is later than the last entry's, else the last entry's
// ms with the next sequence number; so since/until, in receive time, map
// onto XRANGE, and IDs only grow.

// History store limits and timings.
const (
	// historyKeyPart follows the key prefix in a stream's name.
	historyKeyPart = "history:"
	// historyQueueLen bounds the pongs waiting to be written: about half
	// a minute of 1000 exchanges at a pong each 30 s. Past it a pong is
	// dropped (counted), never waited for.
	historyQueueLen = 1024
	// historyWriteTimeout bounds one write script.
	historyWriteTimeout = 2 * time.Second
	// historyFlushTimeout bounds the writes still queued when Run stops.
	historyFlushTimeout = 500 * time.Millisecond
	// historyDedupWindow is how long a pong's hash stays in the recent
	// set: an instance that lags the first writer by more than this
	// writes the pong again.
	historyDedupWindow = 10 * time.Second
	// historyDedupCap bounds the recent set of one exchange, so a flood
	// of distinct pongs keeps it small (the oldest hashes go first).
	historyDedupCap = 1024
	// historyWriteMaxAge is how long a pong may wait in the queue and
	// still be written: one older than this may be in the stream already
	// with its hash gone from the recent set, and written again; it is
	// left to the instances that kept up (counted as late). Half the
	// window leaves room for the write itself and for the first writer
	// having received it a little earlier.
	historyWriteMaxAge = historyDedupWindow / 2
	// historyClockLead is the most an entry's ID may be ahead of Redis's
	// clock: an instance whose clock is ahead (by a year, say) cannot
	// push the stream's IDs, which only grow, into the future for good.
	historyClockLead = 5 * time.Second
	// historyQueryTimeout bounds one history request's reads: a Redis
	// that does not answer must not hold a client's reader for long.
	historyQueryTimeout = 2 * time.Second
	// historyQueryPool is the connections history requests (and the
	// rebuild at start) share; a request waits at most historyPoolWait
	// for one.
	historyQueryPool = 8
	historyPoolWait  = time.Second
	// historyReadPage is the most entries one XRANGE of a request asks
	// for (plus one, to know whether more follow): a request capped by
	// the message size stops after a page or two.
	historyReadPage = 100
	// historyScanMax is the most entries one request looks at, the ones
	// it leaves out (not envelopes, too large for the message) counted:
	// a stream a hostile publisher filled with pongs too large to send
	// costs a request one bounded read, not the whole stream in 2 s.
	historyScanMax = 2 * protocol.MaxHistoryLimit
	// historyHTTPBytes bounds the pongs of one HTTP reply.
	historyHTTPBytes = 4 << 20
	// historyHTTPSlots is the most HTTP history requests served at once,
	// from the read to the last byte written (each holds up to about
	// three times historyHTTPBytes meanwhile); past it one is refused,
	// 503. historyHTTPWriteTimeout bounds the writing of one reply, so a
	// client that does not read holds its slot and memory no longer.
	historyHTTPSlots        = historyQueryPool
	historyHTTPWriteTimeout = 10 * time.Second
	// historyRebuildTimeout bounds the rebuild of the statistics at
	// start, which the subscription waits for.
	historyRebuildTimeout = 5 * time.Second
	// historyRebuildPage is the entries one XREVRANGE of the rebuild
	// reads, and historyRebuildMax the most it reads of one exchange (a
	// day at a pong every 2 s; they are held until replayed, 48 bytes
	// each).
	historyRebuildPage = 500
	historyRebuildMax  = 50_000
	// historyEntryField is the stream field holding the envelope.
	historyEntryField = "env"
)

// historyWriteScript appends one pong unless it is in the recent set.
// KEYS[1] is the stream, KEYS[2] the recent set; ARGV the pong's hash,
// its receive time (Unix ms), the stream's MAXLEN, the de-dup window
// (ms), the recent set's cap, the envelope, the most an entry's ID may
// lead Redis's clock (ms). It returns {1, id} when it
// wrote the pong, {0, ""} for a duplicate.
var historyWriteScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {0, ''}
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
local n = redis.call('ZCARD', KEYS[2])
local cap = tonumber(ARGV[5])
if n > cap then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - cap - 1)
end
redis.call('PEXPIRE', KEYS[2], 2 * window)
-- An instance whose clock runs ahead would otherwise pin the stream's
-- IDs to its future (every later entry takes that ms, next sequence),
-- and since/until select on them: its lead counts only up to ARGV[7].
local ms, seq = math.min(tonumber(ARGV[2]), now + tonumber(ARGV[7])), 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local lms, lseq = string.match(last[1][1], '^(%d+)-(%d+)$')
  if lms and tonumber(lms) >= ms then
    ms, seq = tonumber(lms), tonumber(lseq) + 1
  end
end
local id = string.format('%d-%d', ms, seq)
local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], id, 'env', ARGV[6])
if type(ok) == 'table' and ok.err then
  -- An ID at or below the stream's top (its last entry deleted by
  -- hand): let Redis choose one.
  ok = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'env', ARGV[6])
end
return {1, ok}
`)

// ErrHistoryUnavailable wraps the reasons history cannot be read now.
var ErrHistoryUnavailable = errors.New("hub: history unavailable")

var (
	errHistoryOff     = fmt.Errorf("%w: history is off on this server (--history-len 0)", ErrHistoryUnavailable)
	errHistoryNoRedis = fmt.Errorf("%w: this server has no Redis", ErrHistoryUnavailable)
	errHistoryRedis   = fmt.Errorf("%w: Redis did not answer in time; retry later", ErrHistoryUnavailable)
)

// historyItem is one pong waiting to be written: env is the envelope
// route framed, which nobody writes to again, so it is kept, not copied.
type historyItem struct {
	exchange string
	env      []byte
	data     int // length of the data, at protocol.EnvelopeDataOffset
	ms       int64
	// queued is when the pong was received (monotonic), which route does
	// as it queues it, so Append reads no clock: the writer's lag,
	// whatever the clocks of the instances and of Redis say. Zero: not
	// timed.
	queued time.Time
}

// historyStore is one instance's writer and reader of the history
// streams. Append is safe for concurrent use and never waits; Run is
// called once; Range and Recent are safe for concurrent use.
type historyStore struct {
	writer redis.UniversalClient // Run's alone
	reader redis.UniversalClient
	prefix string
	maxLen int
	maxEnv int
	log    *slog.Logger
	queue  chan historyItem
	// httpSlots holds a token per HTTP request being served.
	httpSlots chan struct{}
	counts    historyCounters
	errLog    *logLimiter
	readLog   *logLimiter

	// maxAge is historyWriteMaxAge; tests that route pongs as if
	// received long ago raise it, set before Run takes one.
	maxAge time.Duration

	// Run's own.
	args    []any
	keys    [2]string
	failing bool
}

// historyCounters are the children of pongcast_history_writes_total, so
// a pong costs no label lookup.
type historyCounters struct {
	ok, duplicate, failed, dropped, late prometheus.Counter
}

// newHistoryClient returns a Redis client for the history store from the
// options the feed's URL parses to: a store client (newStoreClient) of
// pool connections, a request waiting historyPoolWait at most for one.
func newHistoryClient(opts *redis.Options, pool int) *redis.Client {
	return newStoreClient(opts, pool, historyPoolWait)
}

// newStoreClient returns a Redis client for a store (snapshots, history)
// from the options the feed's URL parses to: pool connections (waited
// for poolWait at most; 0: go-redis's default), no retries of its own
// (a store counts a failure and goes on), deadlines from contexts.
func newStoreClient(opts *redis.Options, pool int, poolWait time.Duration) *redis.Client {
	o := *opts
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	o.MaxRetries = -1
	o.PoolSize = pool
	if poolWait > 0 {
		o.PoolTimeout = poolWait
	}
	o.ContextTimeoutEnabled = true
	return redis.NewClient(&o)
}

// newHistoryStore returns a store of the streams under prefix, holding
// about maxLen entries each. It does no I/O until Run, Range or Recent.
func newHistoryStore(writer, reader redis.UniversalClient, prefix string, maxLen, maxEnv int, log *slog.Logger, m *Metrics) *historyStore {
	return &historyStore{
		writer: writer, reader: reader, prefix: prefix, maxLen: maxLen, maxEnv: maxEnv, log: log,
		maxAge:    historyWriteMaxAge,
		queue:     make(chan historyItem, historyQueueLen),
		httpSlots: make(chan struct{}, historyHTTPSlots),
		counts: historyCounters{
			ok:        m.HistoryWrites.WithLabelValues("ok"),
			duplicate: m.HistoryWrites.WithLabelValues("duplicate"),
			failed:    m.HistoryWrites.WithLabelValues("failed"),
			dropped:   m.HistoryWrites.WithLabelValues("dropped"),
			late:      m.HistoryWrites.WithLabelValues("late"),
		},
		errLog:  newLogLimiter(10*time.Second, 1),
		readLog: newLogLimiter(10*time.Second, 1),
	}
}

// StreamKey is the name of exchange's stream.
func (h *historyStore) StreamKey(exchange string) string {
	return h.prefix + historyKeyPart + "{" + exchange + "}"
}

// Append queues one routed pong of exchange (env its envelope, dataLen
// the length of the published data in it, received its receive time)
// to be written. It never waits: with the queue full the pong is counted
// as dropped. env must not be written to afterwards.
func (h *historyStore) Append(exchange string, env []byte, dataLen int, received time.Time) {
	select {
	case h.queue <- historyItem{exchange: exchange, env: env, data: dataLen, ms: received.UnixMilli(), queued: received}:
	default:
		h.counts.dropped.Inc()
	}
}

// Run writes the queued pongs, one script each, in the order queued,
// until ctx ends, then what is still queued within historyFlushTimeout.
// A failed write is counted and not retried (another instance may have
// written it; if none did, it is missing); after a failure the writer
// pauses, with jittered exponential backoff, and counts the pongs it
// takes meanwhile as failed unwritten, so a Redis that is down costs
// neither memory nor a timeout per pong.
func (h *historyStore) Run(ctx context.Context) {
	var pause historyPause
	for {
		var it historyItem
		select {
		case <-ctx.Done():
			h.flush(ctx, nil)
			return
		case it = <-h.queue:
		}
		if pause.paused(time.Now()) {
			h.counts.failed.Inc()
			continue
		}
		err := h.write(ctx, it)
		if failed(err) && ctx.Err() != nil {
			h.flush(ctx, &it) // stopping: the last attempt, bounded, this pong first
			return
		}
		pause.record(err, time.Now())
	}
}

// errLate: write left a pong out for its age. No script ran, so it says
// nothing of Redis: neither a failure nor a success.
var errLate = errors.New("hub: history pong late, not written")

// errRebuildTime: Recent stopped at its time, after the first page.
var errRebuildTime = errors.New("hub: history rebuild out of time")

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// failed reports whether a write's error is a failure of Redis.
func failed(err error) bool { return err != nil && !errors.Is(err, errLate) }

// historyPause is the writer's backoff after failed writes.
type historyPause struct {
	backoff time.Duration // zero: the last script ran
	until   time.Time
}

func (p *historyPause) paused(now time.Time) bool { return p.backoff > 0 && now.Before(p.until) }

// record updates the pause for the outcome of one write: only a script
// that ran resets it, only a failed one lengthens it.
func (p *historyPause) record(err error, now time.Time) {
	switch {
	case err == nil:
		p.backoff = 0
	case failed(err):
		p.backoff = min(max(2*p.backoff, feedBackoffMin), feedBackoffMax)
		// Full jitter keeps instances from retrying in lockstep.
		p.until = now.Add(p.backoff/2 + rand.N(p.backoff/2+1))
	}
}

// flush writes what is queued when Run stops (first, the pong whose
// write the stop cut short, if any), within historyFlushTimeout; what
// is left is counted as failed.
func (h *historyStore) flush(ctx context.Context, first *historyItem) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyFlushTimeout)
	defer cancel()
	for {
		var it historyItem
		if first != nil {
			it, first = *first, nil
		} else {
			select {
			case it = <-h.queue:
			default:
				return
			}
		}
		// write counts its own failures, except one the deadline cut.
		if ctx.Err() != nil || (failed(h.write(ctx, it)) && ctx.Err() != nil) {
			h.counts.failed.Inc()
		}
	}
}

// write runs the write script for one pong and counts the outcome; a
// pong queued longer than maxAge is counted late, unwritten (errLate).
func (h *historyStore) write(ctx context.Context, it historyItem) error {
	if !it.queued.IsZero() && time.Since(it.queued) > h.maxAge {
		h.counts.late.Inc()
		return errLate
	}
	off := protocol.EnvelopeDataOffset(it.exchange)
	sum := sha256.Sum256(it.env[off : off+it.data])
	var hash [32]byte
	hex.Encode(hash[:], sum[:16])
	h.keys[0] = h.StreamKey(it.exchange)
	h.keys[1] = h.keys[0] + ":recent"
	h.args = append(h.args[:0], hash[:], it.ms, h.maxLen, historyDedupWindow.Milliseconds(), historyDedupCap, it.env, historyClockLead.Milliseconds())
	wctx, cancel := context.WithTimeout(ctx, historyWriteTimeout)
	defer cancel()
	res, err := historyWriteScript.Run(wctx, h.writer, h.keys[:], h.args...).Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("hub: history write script answered %d values, want 2", len(res))
	}
	if err != nil {
		if ctx.Err() == nil {
			h.counts.failed.Inc()
			h.failing = true
			h.errLog.log(h.log, slog.LevelWarn, "history writes failing; pongs are delivered, not recorded",
				"exchange", it.exchange, "error", err)
		}
		return err
	}
	if h.failing {
		h.failing = false
		h.log.Info("history writes resumed")
	}
	if added, _ := res[0].(int64); added == 1 {
		h.counts.ok.Inc()
	} else {
		h.counts.duplicate.Inc()
	}
	return nil
}

// historyPage is one answer to a history request.
type historyPage struct {
	pongs [][]byte
	// more says that pongs in the range follow the last one here.
	more bool
	// cursor is where the page stopped: the position of the last entry
	// it looked at; not set when it looked at none.
	cursor protocol.Cursor
	// found is false when the exchange has no stream at all.
	found bool
}

// maxStreamSeq is the largest sequence number of a stream ID.
const maxStreamSeq = "18446744073709551615"

// Range reads the pongs of q oldest first: at most q.Limit, their
// envelopes and the commas between them within budget bytes (0: no
// bound). An entry that is not an envelope within the message cap is
// skipped and logged; one too large for budget alone is skipped too (the
// HTTP endpoint, without a tight budget, has it), so a reply never stalls
// on it. It looks at historyScanMax entries at most: past them it says
// more, with the cursor of the last one, maybe with no pongs.
func (h *historyStore) Range(ctx context.Context, q protocol.HistoryQuery, budget int) (historyPage, error) {
	key := h.StreamKey(q.Exchange)
	start := strconv.FormatInt(q.Since, 10) + "-0"
	if q.After.Set {
		start = nextStreamID(q.After)
	}
	end := "+"
	if q.Until != protocol.NoUntil {
		end = strconv.FormatInt(q.Until, 10) + "-" + maxStreamSeq
	}
	page := historyPage{found: true}
	used, looked := 0, 0
	for start != "" {
		want := min(q.Limit-len(page.pongs), historyReadPage, historyScanMax-looked) + 1
		msgs, err := h.reader.XRangeN(ctx, key, start, end, int64(want)).Result()
		if err != nil {
			return historyPage{}, fmt.Errorf("%w: read %s: %w", ErrHistoryUnavailable, key, err)
		}
		for _, m := range msgs {
			if len(page.pongs) == q.Limit || looked == historyScanMax {
				page.more = true // from the cursor on, which is where it stopped
				return page, nil
			}
			looked++
			cur, err := protocol.ParseCursor(m.ID)
			if err != nil {
				h.readLog.log(h.log, slog.LevelWarn, "history entry with an ID past the range; read stops there", "key", key, "id", m.ID)
				return page, nil
			}
			env, ok := m.Values[historyEntryField].(string)
			if !ok || len(env) > h.maxEnv || len(env) < 2 || env[0] != '{' {
				h.readLog.log(h.log, slog.LevelWarn, "history entry skipped: not an envelope", "key", key, "id", m.ID)
				page.cursor = cur
				continue
			}
			cost := len(env) + min(1, len(page.pongs)) // a comma before all but the first
			switch {
			case budget > 0 && len(env) > budget:
				h.readLog.log(h.log, slog.LevelInfo, "history entry too large for a history message, left out (GET .../history has it)",
					"key", key, "id", m.ID, "bytes", len(env))
				page.cursor = cur
				continue
			case budget > 0 && used+cost > budget:
				page.more = true
				return page, nil
			}
			used += cost
			page.pongs = append(page.pongs, []byte(env))
			page.cursor = cur
		}
		if len(msgs) < want {
			break
		}
		start = nextStreamID(page.cursor)
	}
	if !page.cursor.Set {
		n, err := h.reader.Exists(ctx, key).Result()
		if err != nil {
			return historyPage{}, fmt.Errorf("%w: read %s: %w", ErrHistoryUnavailable, key, err)
		}
		page.found = n == 1
	}
	return page, nil
}

// nextStreamID is the first stream ID after c; "" when there is none.
func nextStreamID(c protocol.Cursor) string {
	switch {
	case c.Seq < 1<<64-1:
		return strconv.FormatUint(c.Ms, 10) + "-" + strconv.FormatUint(c.Seq+1, 10)
	case c.Ms < protocol.MaxHistoryMs:
		return strconv.FormatUint(c.Ms+1, 10) + "-0"
	}
	return ""
}

// Recent reads exchange's pongs received since from, oldest first, for
// health.Tracker.Replay: at most the stream's length (and
// historyRebuildMax), newest first from Redis, so a read cut short keeps
// the newest part (the short windows right). The first page is read
// whatever the time (within historyQueryTimeout); the pages after it
// only until until, and a read stopped there ends with errRebuildTime.
// It returns the last envelope too, and how many entries it skipped for
// not being pong envelopes of exchange. On an error it returns what it
// read before it.
func (h *historyStore) Recent(ctx context.Context, exchange string, from, until time.Time) ([]health.PastPong, []byte, int, error) {
	key := h.StreamKey(exchange)
	start := strconv.FormatInt(max(0, from.UnixMilli()), 10) + "-0"
	end := "+"
	var (
		past    []health.PastPong
		last    []byte
		skipped int
	)
	most := min(h.maxLen, historyRebuildMax)
	for page := 0; len(past)+skipped < most; page++ {
		n := min(historyRebuildPage, most-len(past)-skipped)
		var pctx context.Context
		var cancel context.CancelFunc
		if page == 0 {
			// The newest page whatever the time left: every exchange gets
			// its recent pongs, however slow the machine.
			pctx, cancel = context.WithTimeout(ctx, historyQueryTimeout)
		} else {
			if !time.Now().Before(until) {
				slices.Reverse(past)
				return past, last, skipped, fmt.Errorf("hub: read %s: %w", key, errRebuildTime)
			}
			pctx, cancel = context.WithDeadline(ctx, until)
		}
		msgs, err := h.reader.XRevRangeN(pctx, key, end, start, int64(n)).Result()
		outOfTime := page > 0 && ctx.Err() == nil && (pctx.Err() != nil || isTimeout(err))
		cancel()
		if err != nil {
			if outOfTime {
				// go-redis sets the socket's deadline from the context's:
				// the read can fail as an i/o timeout a moment before the
				// context says it is done.
				err = errRebuildTime
			}
			slices.Reverse(past)
			return past, last, skipped, fmt.Errorf("hub: read %s: %w", key, err)
		}
		for _, m := range msgs {
			env, _ := m.Values[historyEntryField].(string)
			p, ok := h.pastPong(exchange, env)
			if !ok {
				skipped++
				continue
			}
			if last == nil {
				last = []byte(env)
			}
			past = append(past, p)
		}
		if len(msgs) < n {
			break
		}
		cur, err := protocol.ParseCursor(msgs[len(msgs)-1].ID)
		if err != nil || (cur.Ms == 0 && cur.Seq == 0) {
			break
		}
		if cur.Seq > 0 {
			end = strconv.FormatUint(cur.Ms, 10) + "-" + strconv.FormatUint(cur.Seq-1, 10)
		} else {
			end = strconv.FormatUint(cur.Ms-1, 10) + "-" + maxStreamSeq
		}
	}
	slices.Reverse(past)
	return past, last, skipped, nil
}

// pastPong reads one stored envelope of exchange as Replay takes it.
func (h *historyStore) pastPong(exchange, env string) (health.PastPong, bool) {
	if len(env) > h.maxEnv {
		return health.PastPong{}, false
	}
	var e struct {
		Type      string          `json:"type"`
		Exchange  string          `json:"exchange"`
		Data      json.RawMessage `json:"data"`
		Timestamp *int64          `json:"timestamp"`
	}
	if json.Unmarshal([]byte(env), &e) != nil || e.Type != protocol.TypeExchangePong || e.Exchange != exchange || e.Timestamp == nil {
		return health.PastPong{}, false
	}
	p, err := protocol.ParsePong(e.Data, h.maxEnv)
	if err != nil || p.Exchange != exchange {
		return health.PastPong{}, false
	}
	return health.PastPong{
		Sample:   health.Sample{Status: p.Status, Latency: p.Latency, HasLatency: p.HasLatency},
		Received: time.UnixMilli(*e.Timestamp),
	}, true
}
