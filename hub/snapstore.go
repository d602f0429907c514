package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/protocol"
)

// The snapshot store keeps the newest pong of each exchange in Redis, so
// that every instance shares it and a freshly started one serves
// snapshots at once.
//
// Stored format: one hash, KeyPrefix+"snapshots" (one key, so every
// script touches a single slot of a Redis Cluster). A field is an
// exchange's normalised name; its value is
//
//	<ms>:<envelope>
//
// where ms is the server receive time in Unix milliseconds (1 to 15
// decimal digits) and envelope is the seed envelope clients got, whose
// "timestamp" is that same ms. The first ':' ends the time: digits hold
// none, and the envelope starts with '{'. Newest wins by ms; on a tie the
// stored value stays (the same pong received in the same millisecond by
// two instances has the same envelope, byte for byte). A stored value
// that is not of this form, or whose time is more than snapshotMaxSkew
// ahead of the writer's clock, loses to any value written. The hash has at
// most MaxExchanges fields: a write adds none past that. A value received
// longer than the horizon (ForgetAfter) ago is deleted: by LoadAll as it
// reads, and by a write that finds the hash full (at most once every
// snapshotSweepEvery), so names a publisher made up leave the hash a day
// later, and their fields go to other exchanges.

// Snapshot store limits and timings.
const (
	// snapshotKeySuffix follows the key prefix in the hash's name.
	snapshotKeySuffix = "snapshots"
	// defaultSnapshotWriteTimeout bounds one write of a batch to Redis.
	defaultSnapshotWriteTimeout = 2 * time.Second
	// defaultSnapshotRetryFor is how long a value that fails to be written
	// is retried before it is given up (unless a newer one replaces it
	// first): long enough to outlast a Redis restart or a failover, short
	// enough that nothing is retried forever.
	defaultSnapshotRetryFor = 5 * time.Minute
	// snapshotFlushTimeout bounds the last write when Run stops, so that
	// a Redis that is down delays the exit by this much at most.
	snapshotFlushTimeout = 500 * time.Millisecond
	// A batch is one script call: at most this many values and (past the
	// first value) this many bytes, so one call stays short in Redis.
	snapshotBatchEntries = 256
	snapshotBatchBytes   = 1 << 20
	// LoadAll reads HSCAN pages of this many fields (a hint to Redis), or
	// fewer when the largest values would make a page larger than
	// snapshotPageBytes.
	snapshotScanCount = 100
	snapshotPageBytes = 4 << 20
	// snapshotMaxMsDigits bounds the time in a stored value: 15 digits
	// reach the year 33658, and every such number is exact in Lua's
	// doubles.
	snapshotMaxMsDigits = 15
	// snapshotScanFactor bounds the fields LoadAll looks at, as a
	// multiple of MaxExchanges: a hash full of junk is not read to its
	// end. The bytes it reads are bounded too, by MaxExchanges of the
	// largest values.
	snapshotScanFactor = 4
	// snapshotMaxSkew is how far ahead of this instance's clock a stored
	// receive time may be (another instance's clock, a little fast). A
	// time further ahead is junk: LoadAll skips it, and a write replaces
	// it, so that no value can win for ever.
	snapshotMaxSkew = time.Minute
	// snapshotValueHeadroom is spare capacity in a value buffer, so the
	// next pong, a few bytes longer, still fits.
	snapshotValueHeadroom = 32
	// snapshotSweepEvery is how often at most a write that finds the hash
	// full looks through it for values past the horizon: a sweep reads
	// every value, and a value gets past the horizon only by ageing.
	snapshotSweepEvery = time.Minute
)

// snapshotWriteScript stores each value given unless the stored one is at
// least as new, and adds no field past the bound. KEYS[1] is the hash;
// ARGV[1] the most fields it may have, ARGV[2] the latest receive time
// believable, ARGV[3] the oldest kept (Unix ms), ARGV[4] "1" if it may
// sweep; then exchange, value pairs. A stored value without a
// well-formed, believable time is replaced; a value older than the
// oldest is not written. The first new field that finds the hash full
// makes it sweep, if it may: delete every value older than the oldest
// (unless the Redis user may not run HKEYS or HDEL: then it does not
// sweep, and the write goes on). It returns how many values it stored, how many new fields it refused
// for the bound, how many values it left out as too old, whether it
// swept (1) and how many fields the sweep deleted.
var snapshotWriteScript = redis.NewScript(`
local maxFields = tonumber(ARGV[1])
local latest = tonumber(ARGV[2])
local oldest = tonumber(ARGV[3])
local maySweep = ARGV[4] == '1'
local stored, full, old, swept, removed = 0, 0, 0, 0, 0
local function sweep()
  local fields = redis.pcall('HKEYS', KEYS[1])
  if fields.err then return end
  for _, f in ipairs(fields) do
    local ms = string.match(redis.call('HGET', KEYS[1], f), '^(%d+):')
    if ms and #ms <= 15 and tonumber(ms) < oldest then
      if type(redis.pcall('HDEL', KEYS[1], f)) ~= 'number' then return end
      removed = removed + 1
    end
  end
end
for i = 5, #ARGV, 2 do
  local new = tonumber(string.match(ARGV[i+1], '^(%d+):'))
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur and maySweep and redis.call('HLEN', KEYS[1]) >= maxFields then
    maySweep = false
    swept = 1
    sweep()
  end
  local prev = cur and string.match(cur, '^(%d+):')
  if new < oldest then
    old = old + 1
  elseif not cur and redis.call('HLEN', KEYS[1]) >= maxFields then
    full = full + 1
  elseif not prev or #prev > 15 or tonumber(prev) < new or tonumber(prev) > latest then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
    stored = stored + 1
  end
end
return {stored, full, old, swept, removed}
`)

// snapshotScanScript reads one HSCAN page of the hash without letting a
// value past the size bound out of Redis: such a value comes back as its
// length, an integer, and a field is cut to one byte past the longest
// valid name. A value received before the oldest time kept is deleted
// instead (in the script: a newer value another instance writes
// meanwhile is never deleted); if the Redis user may not run HDEL, it
// is returned, for LoadAll to skip. KEYS[1] is the hash; ARGV the cursor, the
// COUNT hint, the largest value wanted and the oldest time kept (Unix
// ms). It returns the next cursor, how many fields it deleted, then
// field, value pairs.
var snapshotScanScript = redis.NewScript(`
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local maxValue = tonumber(ARGV[3])
local oldest = tonumber(ARGV[4])
local out = {page[1], 0}
local kv = page[2]
for i = 1, #kv, 2 do
  local f, v = kv[i], kv[i+1]
  local ms = string.match(v, '^(%d+):')
  if ms and #ms <= 15 and tonumber(ms) < oldest and type(redis.pcall('HDEL', KEYS[1], f)) == 'number' then
    out[2] = out[2] + 1
  else
    if #f > 65 then f = string.sub(f, 1, 65) end
    out[#out+1] = f
    if #v > maxValue then out[#out+1] = #v else out[#out+1] = v end
  end
end
return out
`)

// Reasons a snapshot is not written, for pongcast_snapshot_dropped_total.
const (
	snapDropExchanges = iota // this instance keeps MaxExchanges exchanges already
	snapDropHashFull         // the hash has MaxExchanges fields already
	snapDropExpired          // writing it failed for longer than RetryFor
	snapDropTime             // its receive time cannot be stored (before 1970, or too far ahead)
	snapDropOld              // received longer than the horizon ago
	numSnapDrops
)

var snapshotDropReasons = [numSnapDrops]string{"exchanges", "hash_full", "expired", "time", "old"}

// Reasons LoadAll skips a field, for pongcast_snapshot_load_skipped_total.
const (
	snapSkipName     = iota // not a normalised exchange name
	snapSkipValue           // not <ms>:<envelope>
	snapSkipSize            // the value is larger than an envelope may be
	snapSkipEnvelope        // not a pong envelope of this exchange and time
	snapSkipFuture          // received more than snapshotMaxSkew from now
	snapSkipLimit           // past MaxExchanges loaded or the scan bound
	snapSkipOld             // received longer than the horizon ago, and not deleted (no HDEL right)
	numSnapSkips
)

var snapshotSkipReasons = [numSnapSkips]string{"name", "value", "size", "envelope", "future", "limit", "old"}

// snapshotStoreOptions configure a snapshotStore; every zero value means
// the default named in its comment.
type snapshotStoreOptions struct {
	// MaxExchanges bounds the exchanges the store keeps values of, the
	// fields it lets the hash grow to, and the snapshots LoadAll returns.
	// If zero, health.DefaultMaxExchanges.
	MaxExchanges int
	// MaxMessageBytes is the largest envelope LoadAll accepts. If zero,
	// protocol.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// WriteTimeout bounds one write. If zero, defaultSnapshotWriteTimeout.
	WriteTimeout time.Duration
	// RetryFor is how long a value that cannot be written is retried. If
	// zero, defaultSnapshotRetryFor.
	RetryFor time.Duration
	// ForgetAfter is the horizon: a value received longer ago is deleted
	// from the hash and not loaded. If zero, health.DefaultForgetAfter.
	ForgetAfter time.Duration
	// Logger receives the store's logs. If nil, slog.Default().
	Logger *slog.Logger
}

// snapshotStore is the shared snapshot hash: Save queues a value on the
// routing path without waiting, Run writes the queue to Redis, LoadAll
// reads the hash at start. Save, LoadAll and Counts are safe for
// concurrent use; Run is called once.
type snapshotStore struct {
	client redis.UniversalClient
	keys   []string // the hash, as the scripts take it
	opts   snapshotStoreOptions
	log    *slog.Logger
	wake   chan struct{} // a value is pending; buffered, one deep

	mu    sync.Mutex
	slots map[string]*snapSlot // at most MaxExchanges; removed by Forget
	dirty []*snapSlot          // the slots in state slotDirty, in order

	// The writer's own: only Run touches them.
	batch  []snapWrite
	arena  []byte // the batch's values, copied out of their slots
	args   []any
	failed bool // the last write failed: the next success is logged
	// lastSweep is when a write last swept the hash (see
	// snapshotWriteScript).
	lastSweep time.Time

	writesOK     atomic.Uint64
	writesFailed atomic.Uint64
	stored       atomic.Uint64
	forgotten    atomic.Uint64 // fields deleted from the hash as past the horizon
	dropped      [numSnapDrops]atomic.Uint64
	skipped      [numSnapSkips]atomic.Uint64

	errLog  *logLimiter
	skipLog *logLimiter
}

// A slot's state: idle (its value is in Redis or given up), dirty (a
// value waits to be written), writing (its value is in the batch being
// written, and has not been replaced since) or forgotten (out of the
// store: a batch that holds it lets it go).
const (
	slotIdle = iota
	slotDirty
	slotWriting
	slotForgotten
)

// snapSlot is one exchange's newest value. Its buffer is reused from
// pong to pong, so Save allocates nothing in steady state.
type snapSlot struct {
	name  string
	ms    int64  // receive time of the newest value given to Save
	value []byte // "<ms>:<envelope>" of it
	state int
	// failingSince is when writing this value first failed; zero while
	// it has not.
	failingSince time.Time
}

// snapWrite is one value of a batch: its slot, and where its bytes are
// in the arena.
type snapWrite struct {
	slot       *snapSlot
	start, end int
}

// StoredSnapshot is one exchange's snapshot as read from Redis.
type StoredSnapshot struct {
	Exchange string // normalised
	Envelope []byte // the seed envelope, its timestamp Received
	Received time.Time
}

// newSnapshotClient returns a Redis client for a snapshotStore, from the
// options the feed's URL parses to. The store retries on its own, with
// newer values replacing older ones, so the client does not; deadlines
// come from the store's contexts. The caller closes it.
//
// The server's revocation loads (runRevocations: at start and after every
// reconnect) borrow it too. Its pool is one connection for each of its
// three users, the snapshot writer, LoadAll at start and a revocation
// load, so that none waits behind another: readiness waits for the
// revocation load, and it must not queue behind a writer's script on a
// slow Redis.
func newSnapshotClient(opts *redis.Options) *redis.Client {
	return newStoreClient(opts, snapshotClientPool, 0)
}

// snapshotClientPool: the writer, LoadAll, a revocation load.
const snapshotClientPool = 3

// newSnapshotStore returns a store of the hash prefix+"snapshots" in the
// Redis client talks to. It does no I/O until Run or LoadAll.
func newSnapshotStore(client redis.UniversalClient, prefix string, opts snapshotStoreOptions) *snapshotStore {
	if opts.MaxExchanges <= 0 {
		opts.MaxExchanges = health.DefaultMaxExchanges
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = protocol.DefaultMaxMessageBytes
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultSnapshotWriteTimeout
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = defaultSnapshotRetryFor
	}
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = health.DefaultForgetAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &snapshotStore{
		client:  client,
		keys:    []string{prefix + snapshotKeySuffix},
		opts:    opts,
		log:     opts.Logger,
		wake:    make(chan struct{}, 1),
		slots:   make(map[string]*snapSlot),
		dirty:   make([]*snapSlot, 0, opts.MaxExchanges),
		errLog:  newLogLimiter(10*time.Second, 1),
		skipLog: newLogLimiter(time.Second, 5),
	}
}

// Key returns the name of the hash.
func (s *snapshotStore) Key() string { return s.keys[0] }

// Save queues env, the seed envelope of a pong of exchange (a normalised
// name) received at received, to be written to Redis. It never waits on
// Redis: per exchange only the newest value waits, so a value older than
// the one queued or written last is ignored. env is copied; the caller
// may reuse it. In steady state (an exchange seen before, an envelope no
// larger than a few bytes over its last) it allocates nothing.
func (s *snapshotStore) Save(exchange string, env []byte, received time.Time) {
	ms := received.UnixMilli()
	if ms <= 0 || ms >= 1e15 {
		s.dropped[snapDropTime].Add(1)
		return
	}
	s.mu.Lock()
	sl := s.slots[exchange]
	if sl == nil {
		if len(s.slots) >= s.opts.MaxExchanges {
			s.mu.Unlock()
			s.dropped[snapDropExchanges].Add(1)
			return
		}
		// A copy: the name outlives the pong.
		sl = &snapSlot{name: strings.Clone(exchange)}
		s.slots[sl.name] = sl
	} else if ms <= sl.ms {
		s.mu.Unlock()
		return
	}
	n := decimalDigits(ms) + 1 + len(env)
	if cap(sl.value) < n {
		sl.value = make([]byte, 0, n+snapshotValueHeadroom)
	}
	sl.value = strconv.AppendInt(sl.value[:0], ms, 10)
	sl.value = append(sl.value, ':')
	sl.value = append(sl.value, env...)
	sl.ms = ms
	sl.failingSince = time.Time{}
	if sl.state != slotDirty {
		sl.state = slotDirty
		s.dirty = append(s.dirty, sl)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // the writer has been woken already
	}
}

// Forget drops the slots of exchanges the tracker has forgotten whose
// newest value was received at or before cutoff, with any write of it
// still pending: their room goes to new exchanges. A slot given a newer
// value meanwhile (the exchange tracked anew) stays.
func (s *snapshotStore) Forget(names []string, cutoff time.Time) {
	cutoffMs := cutoff.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := false
	for _, name := range names {
		sl := s.slots[name]
		if sl == nil || sl.ms > cutoffMs {
			continue
		}
		delete(s.slots, name)
		pending = pending || sl.state == slotDirty
		sl.state = slotForgotten
	}
	if pending {
		s.dirty = slices.DeleteFunc(s.dirty, func(sl *snapSlot) bool { return sl.state == slotForgotten })
	}
}

// decimalDigits is the number of decimal digits of n > 0.
func decimalDigits(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// pending returns how many values wait to be written.
func (s *snapshotStore) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

// Run writes the values Save queues until ctx ends, then makes one last
// attempt, bounded by snapshotFlushTimeout, at what is still pending. A
// write that fails is retried with jittered exponential backoff, the
// newest value of each exchange replacing the one that failed.
func (s *snapshotStore) Run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		if backoff == 0 {
			select {
			case <-ctx.Done():
				s.flush(ctx)
				return
			case <-s.wake:
			}
		} else {
			// Full jitter keeps instances from retrying in lockstep.
			t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			select {
			case <-ctx.Done():
				t.Stop()
				s.flush(ctx)
				return
			case <-t.C:
			}
		}
		if s.writePending(ctx) {
			backoff = 0
		} else {
			backoff = min(max(2*backoff, feedBackoffMin), feedBackoffMax)
		}
	}
}

// flush makes the last attempt when Run stops.
func (s *snapshotStore) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), snapshotFlushTimeout)
	defer cancel()
	if !s.writePending(ctx) {
		s.log.Warn("snapshots not written at stop", "key", s.Key(), "pending", s.pending())
	}
}

// writePending writes batches until none is pending or one fails, and
// reports whether all went well.
func (s *snapshotStore) writePending(ctx context.Context) bool {
	for s.takeBatch() {
		err := s.writeBatch(ctx)
		// A write cut short by the stop is not a failure: flush retries it.
		s.finishBatch(err, ctx.Err() != nil)
		if err != nil {
			return false
		}
	}
	return true
}

// takeBatch moves the oldest pending values into the batch and reports
// whether there are any.
func (s *snapshotStore) takeBatch() bool {
	s.batch, s.arena = s.batch[:0], s.arena[:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sl := range s.dirty {
		if n == snapshotBatchEntries || (n > 0 && len(s.arena)+len(sl.value) > snapshotBatchBytes) {
			break
		}
		start := len(s.arena)
		s.arena = append(s.arena, sl.value...)
		s.batch = append(s.batch, snapWrite{slot: sl, start: start, end: len(s.arena)})
		sl.state = slotWriting
		n++
	}
	s.dirty = s.dirty[:copy(s.dirty, s.dirty[n:])]
	return n > 0
}

// writeBatch runs the write script on the batch.
func (s *snapshotStore) writeBatch(ctx context.Context) error {
	now := time.Now()
	maySweep := 0
	if now.Sub(s.lastSweep) >= snapshotSweepEvery {
		maySweep = 1
	}
	s.args = append(s.args[:0], s.opts.MaxExchanges, now.Add(snapshotMaxSkew).UnixMilli(),
		now.Add(-s.opts.ForgetAfter).UnixMilli(), maySweep)
	for _, w := range s.batch {
		s.args = append(s.args, w.slot.name, s.arena[w.start:w.end])
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	res, err := snapshotWriteScript.Run(ctx, s.client, s.keys, s.args...).Int64Slice()
	if err == nil && len(res) != 5 {
		err = fmt.Errorf("hub: snapshot write script answered %d numbers, want 5", len(res))
	}
	if err != nil {
		return err
	}
	s.stored.Add(uint64(res[0]))
	s.dropped[snapDropHashFull].Add(uint64(res[1]))
	s.dropped[snapDropOld].Add(uint64(res[2]))
	if res[3] == 1 {
		s.lastSweep = now
		s.forgotten.Add(uint64(res[4]))
	}
	return nil
}

// finishBatch settles the batch after its write: written values are
// done; values that failed wait again, unless replaced meanwhile (the
// newer value is pending already) or failing for longer than RetryFor.
// A batch stopped by Run's end waits again, uncounted.
func (s *snapshotStore) finishBatch(err error, stopping bool) {
	n := uint64(len(s.batch))
	switch {
	case err == nil:
		s.writesOK.Add(n)
		if s.failed {
			s.failed = false
			s.log.Info("snapshot writes resumed", "key", s.Key())
		}
	case stopping:
	default:
		s.writesFailed.Add(n)
		s.failed = true
	}
	now := time.Now()
	expired := 0
	s.mu.Lock()
	for _, w := range s.batch {
		sl := w.slot
		switch {
		case sl.state != slotWriting: // replaced by a newer value, pending; or forgotten
		case err == nil:
			sl.state = slotIdle
		case stopping:
			sl.state = slotDirty
			s.dirty = append(s.dirty, sl)
		case sl.failingSince.IsZero():
			sl.failingSince = now
			fallthrough
		case now.Sub(sl.failingSince) < s.opts.RetryFor:
			sl.state = slotDirty
			s.dirty = append(s.dirty, sl)
		default:
			sl.state = slotIdle
			expired++
		}
	}
	pending := len(s.dirty)
	s.mu.Unlock()
	s.dropped[snapDropExpired].Add(uint64(expired))
	if err != nil && !stopping {
		s.errLog.log(s.log, slog.LevelWarn, "snapshot writes failing; retrying",
			"key", s.Key(), "error", err, "pending", pending, "given_up", expired)
	}
}

// LoadAll reads the hash: the snapshot of each exchange found there, at
// most MaxExchanges of them. It reads page by page (HSCAN), looks at no
// more than a few times MaxExchanges fields, and lets no value larger
// than an envelope may be out of Redis; it skips and counts each field
// that is not a valid name with a value of the stored format, whose
// envelope is a pong envelope of that exchange, received at the time the
// value says. On an error it returns what it read before, which is safe
// to merge: newest wins.
func (s *snapshotStore) LoadAll(ctx context.Context) ([]StoredSnapshot, error) {
	maxEnv := s.opts.MaxMessageBytes
	maxValue := snapshotMaxMsDigits + 1 + maxEnv
	maxScan := snapshotScanFactor * s.opts.MaxExchanges
	maxRead := s.opts.MaxExchanges * maxValue
	count := min(snapshotScanCount, max(1, snapshotPageBytes/maxValue))
	now := time.Now()
	latest := now.Add(snapshotMaxSkew).UnixMilli()
	oldest := now.Add(-s.opts.ForgetAfter).UnixMilli()
	var (
		forgotten int
		out       []StoredSnapshot
		index     = map[string]int{} // exchange → its place in out: HSCAN may repeat a field
		scanned   int
		read      int // bytes
		skipped   int
		cursor    = "0"
	)
	skip := func(reason int, field string) {
		skipped++
		s.skipped[reason].Add(1)
		s.skipLog.log(s.log, slog.LevelWarn, "snapshot in redis skipped",
			"key", s.Key(), "field", field, "reason", snapshotSkipReasons[reason])
	}
	for {
		page, err := snapshotScanScript.Run(ctx, s.client, s.keys, cursor, count, maxValue, oldest).Slice()
		var deleted int64
		if err == nil {
			cursor, deleted, err = scanPage(page)
		}
		if err != nil {
			return out, fmt.Errorf("hub: load snapshots from %s: %w", s.Key(), err)
		}
		s.forgotten.Add(uint64(deleted))
		forgotten += int(deleted)
		scanned += int(deleted)
		for i := 2; i+1 < len(page); i += 2 {
			scanned++
			field, _ := page[i].(string)
			value, isString := page[i+1].(string)
			read += len(field) + len(value)
			if name, err := protocol.NormalizeExchange(field); err != nil || name != field {
				skip(snapSkipName, field)
				continue
			}
			if !isString {
				skip(snapSkipSize, field)
				continue
			}
			ms, env, ok := parseSnapshotValue(value)
			switch {
			case !ok:
				skip(snapSkipValue, field)
				continue
			case len(env) > maxEnv:
				skip(snapSkipSize, field)
				continue
			case !isSnapshotEnvelope(env, field, ms):
				skip(snapSkipEnvelope, field)
				continue
			case ms > latest:
				skip(snapSkipFuture, field)
				continue
			case ms < oldest:
				skip(snapSkipOld, field)
				continue
			}
			snap := StoredSnapshot{Exchange: field, Envelope: []byte(env), Received: time.UnixMilli(ms)}
			if j, seen := index[field]; seen {
				if snap.Received.After(out[j].Received) {
					out[j] = snap
				}
				continue
			}
			if len(out) == s.opts.MaxExchanges {
				skip(snapSkipLimit, field)
				continue
			}
			index[field] = len(out)
			out = append(out, snap)
		}
		if cursor == "0" {
			break
		}
		if scanned >= maxScan || read >= maxRead {
			// The fields not looked at count as skipped for the bound.
			left, _ := s.client.HLen(ctx, s.Key()).Result()
			n := max(1, left-int64(scanned))
			skipped += int(n)
			s.skipped[snapSkipLimit].Add(uint64(n))
			s.log.Warn("snapshot hash not read to its end", "key", s.Key(), "scanned", scanned, "bytes", read, "fields", left)
			break
		}
	}
	s.log.Info("snapshots loaded", "key", s.Key(), "loaded", len(out), "skipped", skipped, "deleted_old", forgotten)
	return out, nil
}

// scanPage returns the next cursor of a page of snapshotScanScript, and
// how many fields it deleted.
func scanPage(page []any) (cursor string, deleted int64, err error) {
	if len(page) < 2 || len(page)%2 != 0 {
		return "", 0, fmt.Errorf("hub: snapshot scan script answered %d values, want an even number, at least 2", len(page))
	}
	cursor, ok := page[0].(string)
	if !ok {
		return "", 0, fmt.Errorf("hub: snapshot scan script answered a cursor of type %T", page[0])
	}
	if deleted, ok = page[1].(int64); !ok {
		return "", 0, fmt.Errorf("hub: snapshot scan script answered a count of type %T", page[1])
	}
	return cursor, deleted, nil
}

// parseSnapshotValue splits a stored value, "<ms>:<envelope>", into its
// parts: ms 1 to 15 decimal digits, greater than zero; the envelope
// whatever follows the first ':'.
func parseSnapshotValue(v string) (ms int64, env string, ok bool) {
	i := strings.IndexByte(v, ':')
	if i < 1 || i > snapshotMaxMsDigits {
		return 0, "", false
	}
	for j := 0; j < i; j++ {
		c := v[j]
		if c < '0' || c > '9' {
			return 0, "", false
		}
		ms = ms*10 + int64(c-'0')
	}
	return ms, v[i+1:], ms > 0
}

// isSnapshotEnvelope reports whether env is a pong envelope of exchange,
// received at ms: a JSON object whose type, exchange and timestamp say
// so. A snapshot is sent as it is to every subscriber of its exchange, so
// one that names another exchange, or is no envelope at all, is not
// served.
func isSnapshotEnvelope(env, exchange string, ms int64) bool {
	if !strings.HasPrefix(env, "{") {
		return false
	}
	var e struct {
		Type      string `json:"type"`
		Exchange  string `json:"exchange"`
		Timestamp *int64 `json:"timestamp"`
	}
	// Unmarshal refuses anything but one JSON value, and a timestamp that
	// is no integer.
	if json.Unmarshal([]byte(env), &e) != nil {
		return false
	}
	return e.Type == protocol.TypeExchangePong && e.Exchange == exchange && e.Timestamp != nil && *e.Timestamp == ms
}

// snapshotCounts are the store's counters since it was made.
type snapshotCounts struct {
	// WritesOK and WritesFailed count the values written to Redis, by
	// outcome of the write; a value retried counts once per attempt.
	WritesOK, WritesFailed uint64
	// Stored counts the values written that replaced the stored one;
	// the others were older than it, or refused for the bound.
	Stored uint64
	// Forgotten counts the fields deleted from the hash as past the
	// horizon, by LoadAll or a write's sweep.
	Forgotten uint64
	// Dropped counts the values not written, by reason.
	Dropped map[string]uint64
	// LoadSkipped counts the fields LoadAll skipped, by reason.
	LoadSkipped map[string]uint64
}

// Counts returns the store's counters.
func (s *snapshotStore) Counts() snapshotCounts {
	c := snapshotCounts{
		WritesOK:     s.writesOK.Load(),
		WritesFailed: s.writesFailed.Load(),
		Stored:       s.stored.Load(),
		Forgotten:    s.forgotten.Load(),
		Dropped:      make(map[string]uint64, numSnapDrops),
		LoadSkipped:  make(map[string]uint64, numSnapSkips),
	}
	for i, r := range snapshotDropReasons {
		c.Dropped[r] = s.dropped[i].Load()
	}
	for i, r := range snapshotSkipReasons {
		c.LoadSkipped[r] = s.skipped[i].Load()
	}
	return c
}

// Descriptions of the store's metrics.
var (
	snapshotWritesDesc = prometheus.NewDesc("pongcast_snapshot_writes_total",
		"Snapshot values written to the Redis hash, by result (ok or error); a value retried counts once per attempt.", []string{"result"}, nil)
	snapshotDroppedDesc = prometheus.NewDesc("pongcast_snapshot_dropped_total",
		"Snapshot values not written to Redis, by reason: exchanges (this instance keeps the most exchanges already), hash_full (the hash has the most fields), expired (failing for too long), time (a receive time that cannot be stored), old (received longer than 24h ago).", []string{"reason"}, nil)
	snapshotForgottenDesc = prometheus.NewDesc("pongcast_snapshot_forgotten_total",
		"Fields of the Redis snapshot hash deleted because their pong was received longer than 24h ago: at start, or when the hash is full.", nil, nil)
	snapshotSkippedDesc = prometheus.NewDesc("pongcast_snapshot_load_skipped_total",
		"Fields of the Redis snapshot hash skipped at start, by reason: name, value (not <ms>:<envelope>), size, envelope, future (a receive time ahead of this instance's clock by more than a minute), limit, old (received longer than 24h ago, and not deleted: the Redis user may not HDEL).", []string{"reason"}, nil)
)

// Collector returns the store's metrics as a prometheus.Collector, for
// the server's registry; it reads the counters at each scrape.
func (s *snapshotStore) Collector() prometheus.Collector { return snapshotCollector{s} }

type snapshotCollector struct{ s *snapshotStore }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- snapshotWritesDesc
	ch <- snapshotDroppedDesc
	ch <- snapshotSkippedDesc
	ch <- snapshotForgottenDesc
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ch <- prometheus.MustNewConstMetric(snapshotWritesDesc, prometheus.CounterValue, float64(s.writesOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(snapshotWritesDesc, prometheus.CounterValue, float64(s.writesFailed.Load()), "error")
	for i, r := range snapshotDropReasons {
		ch <- prometheus.MustNewConstMetric(snapshotDroppedDesc, prometheus.CounterValue, float64(s.dropped[i].Load()), r)
	}
	for i, r := range snapshotSkipReasons {
		ch <- prometheus.MustNewConstMetric(snapshotSkippedDesc, prometheus.CounterValue, float64(s.skipped[i].Load()), r)
	}
	ch <- prometheus.MustNewConstMetric(snapshotForgottenDesc, prometheus.CounterValue, float64(s.forgotten.Load()))
}
