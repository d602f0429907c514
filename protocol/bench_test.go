package protocol

import "testing"

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
		if _, err := DecodeClientMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}
