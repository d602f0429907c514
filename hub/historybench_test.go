package hub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol"
)

// benchHistoryStore is a store on the test's Redis (the real one with
// PONGCAST_TEST_REDIS_URL) under a prefix of its own, emptied at the end.
func benchHistoryStore(b *testing.B) *historyStore {
	b.Helper()
	return testHistoryStore(b, hubtest.RedisURL(b), hubtest.KeyPrefix(b), DefaultHistoryLen)
}

// benchEnvelope is a pong envelope like a connector's, numbered.
func benchEnvelope(i int, ms int64) historyItem {
	data := fmt.Sprintf(`{"exchange":"gateio","latency":%d,"timestamp":1765738899909,"status":"connected"}`, 40+i%1000)
	if i >= 1000 {
		data = fmt.Sprintf(`{"exchange":"gateio","latency":%d,"timestamp":%d,"status":"connected"}`, 40+i%1000, 1765738899909+i)
	}
	return historyItem{exchange: "gateio", env: protocol.AppendEnvelope(nil, "gateio", []byte(data), ms), data: len(data), ms: ms}
}

// BenchmarkHistoryWrite is the history cost per pong: one write script
// round trip (the hash, the de-dup set, XADD with MAXLEN ~), new pongs
// each time; with -benchtime 2x and more, every other round is the
// duplicate a second instance would send.
func BenchmarkHistoryWrite(b *testing.B) {
	st := benchHistoryStore(b)
	ctx := context.Background()
	base := time.Now().UnixMilli()
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := st.write(ctx, benchEnvelope(i, base+int64(i/4))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		it := benchEnvelope(1_000_000, base)
		if err := st.write(ctx, it); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := st.write(ctx, it); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHistoryQuery is a history message's read: a stream of 10,000
// entries (several per ms), each request from a random time with limit
// 100, within the default message cap, as the session asks. It reports
// the p50 and p99 of a request.
func BenchmarkHistoryQuery(b *testing.B) {
	st := benchHistoryStore(b)
	ctx := context.Background()
	const entries = 10000
	base := time.Now().Add(-time.Hour).UnixMilli()
	pipe := st.writer.Pipeline()
	for i := range entries {
		it := benchEnvelope(i, base+int64(i/3))
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: st.StreamKey("gateio"), ID: strconv.FormatInt(it.ms, 10) + "-" + strconv.Itoa(i%3),
			Values: []any{historyEntryField, it.env}})
		if i%500 == 499 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	budget := protocol.DefaultMaxMessageBytes - protocol.HistoryOverhead("gateio", nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var took []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		q := protocol.HistoryQuery{Exchange: "gateio", Since: base + rng.Int64N(entries/3), Until: protocol.NoUntil, Limit: 100}
		start := time.Now()
		page, err := st.Range(ctx, q, budget)
		if err != nil || len(page.pongs) == 0 {
			b.Fatalf("%d pongs, %v", len(page.pongs), err)
		}
		_ = protocol.EncodeHistory("gateio", page.pongs, page.more, page.cursor, nil)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkHistoryAppend is what history costs the routing path per
// pong: one non-blocking send to the writer's queue (drained here as
// fast as it fills).
func BenchmarkHistoryAppend(b *testing.B) {
	st := newHistoryStore(nil, nil, "p:", 10, 16384, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range st.queue {
		}
	}()
	it := benchEnvelope(1, 1765738899920)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		st.Append(it.exchange, it.env, it.data, now)
	}
	close(st.queue)
	<-done
}

// BenchmarkHistoryRecent is the rebuild's read at start: one exchange's
// stream of historyRebuildMax entries (a pong every 2 s) read newest
// first by Recent, in pages of historyRebuildPage, as the rebuild does.
// It reports the entries read a second, the figure the README gives for
// how much history the rebuild's 5 s cover.
func BenchmarkHistoryRecent(b *testing.B) {
	st := testHistoryStore(b, hubtest.RedisURL(b), hubtest.KeyPrefix(b), historyRebuildMax)
	ctx := context.Background()
	const entries = historyRebuildMax
	base := time.Now().Add(-20 * time.Hour).UnixMilli()
	pipe := st.writer.Pipeline()
	for i := range entries {
		it := benchEnvelope(i, base+int64(i)*2)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: st.StreamKey("gateio"), ID: strconv.FormatInt(it.ms, 10) + "-0",
			Values: []any{historyEntryField, it.env}})
		if i%1000 == 999 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	from := time.UnixMilli(base - 1)
	read := 0
	b.ReportAllocs()
	for b.Loop() {
		past, _, skipped, err := st.Recent(ctx, "gateio", from, time.Now().Add(time.Minute))
		if err != nil || len(past) != entries || skipped != 0 {
			b.Fatalf("%d entries, %d skipped, %v; want %d", len(past), skipped, err, entries)
		}
		read += len(past)
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "entries/s")
}
