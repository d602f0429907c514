package health

import (
	"strconv"
	"testing"
	"time"
)

// t0 is on the hour (and so on every bucket boundary), for tests that
// reason about which buckets a window covers.
var t0 = time.UnixMilli(1_765_738_800_000)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newTracker(tb testing.TB, cfg Config) *Tracker {
	tb.Helper()
	tr, err := NewTracker(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

func connected(lat float64) Sample {
	return Sample{Status: "connected", Latency: lat, HasLatency: true}
}

func status(s string) Sample { return Sample{Status: s} }

// envAt is an envelope like the hub's, distinct per exchange and time.
func envAt(exchange string, tm time.Time) []byte {
	return []byte(`{"type":"exchange:pong","exchange":"` + exchange + `","data":{"exchange":"` + exchange +
		`"},"timestamp":` + strconv.FormatInt(tm.UnixMilli(), 10) + `,"source":"exchange"}`)
}

// observe is Observe with the envelope the time implies.
func observe(tr *Tracker, exchange string, s Sample, tm time.Time) Observation {
	return tr.Observe(exchange, s, tm, envAt(exchange, tm))
}
