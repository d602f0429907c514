package protocol

import (
	"fmt"
	"strconv"
	"testing"
)

var samplePong = []byte(`{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"}`)

// BenchmarkPongToEnvelope is the per-pong work before fan-out: validate
// once, encode the envelope once.
func BenchmarkPongToEnvelope(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParsePong(samplePong, DefaultMaxMessageBytes)
		if err != nil {
			b.Fatal(err)
		}
		buf = AppendEnvelope(buf[:0], p.Exchange, p.Data, 1765738899920)
	}
}

func BenchmarkDecodeClientMessage(b *testing.B) {
	msg := []byte(`{"type":"subscribe","exchanges":["gateio","binance"],"id":"42"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeClientMessage(msg, 101); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNormalizeExchangeList is the worst case a subscribe can ask
// for: as many names as the cap lets through, all distinct or all the
// same, and a 16 KB list of distinct names under no cap at all (what the
// server does when a client may name that many), which must cost in
// proportion to its length, not its square.
func BenchmarkNormalizeExchangeList(b *testing.B) {
	names := func(n int, distinct bool) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "gateio"
			if distinct {
				out[i] = "x" + strconv.Itoa(i)
			}
		}
		return out
	}
	for _, tc := range []struct {
		n, limit int
		distinct bool
	}{
		{101, 101, true}, {101, 101, false}, {2970, 1 << 20, true}, {2970, 1 << 20, false}, {2970, 101, true},
	} {
		kind := "repeated"
		if tc.distinct {
			kind = "distinct"
		}
		raw := names(tc.n, tc.distinct)
		b.Run(fmt.Sprintf("%s-%d-cap-%d", kind, tc.n, tc.limit), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = NormalizeExchangeList(raw, tc.limit)
			}
		})
	}
}
