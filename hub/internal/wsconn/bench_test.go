package wsconn

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// sinkSock is a memSock that takes every write whole at once, as the
// socket of a client that keeps up does.
type sinkSock struct{ *memSock }

func (sinkSock) TryWrite(p []byte) (int, error) { return len(p), nil }
func (sinkSock) Write(p []byte) (int, error)    { return len(p), nil }

// benchFrame is a pong frame of a typical size.
func benchFrame() *Frame {
	f := TextFrame([]byte(`{"type":"exchange:pong","exchange":"gateio","data":{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"},"timestamp":1765738899920,"source":"exchange"}`))
	f.Received = time.Now()
	return f
}

// benchConn upgrades over sock, sends the 101 and runs the reader, until
// the benchmark ends.
func benchConn(b *testing.B, sock net.Conn, cfg *Config) *Conn {
	c := accept(b, sock, cfg)
	done := startReader(c)
	b.Cleanup(func() {
		c.CloseNow(CauseConnError)
		<-done
	})
	c.FinishHandshake()
	return c
}

// BenchmarkDeliver is one Deliver on the fast path, the queue not full:
// "sent" goes straight into a socket that takes it all; "queued" joins
// the queue behind a writer stuck on a full socket (the queue is emptied
// every half queue, so it never fills), "queued/conflate" the same with
// Config.Conflate.
func BenchmarkDeliver(b *testing.B) {
	b.Run("sent", func(b *testing.B) {
		c := benchConn(b, sinkSock{newMemSock(1)}, testConfig(nil))
		f := benchFrame()
		b.ReportAllocs()
		for b.Loop() {
			if c.Deliver(f) != Sent {
				b.Fatal("not sent")
			}
		}
	})
	b.Run("queued", func(b *testing.B) { benchQueued(b, testConfig(nil)) })
	b.Run("queued/conflate", func(b *testing.B) {
		cfg := testConfig(nil)
		cfg.Conflate = true
		benchQueued(b, cfg)
	})
}

func benchQueued(b *testing.B, cfg *Config) {
	cfg.SendQueue = 256
	sock := newMemSock(1)
	sock.room = 0 // nothing goes in: the writer waits on the 101
	c := benchConn(b, sock, cfg)
	f := benchFrame()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if r := c.Deliver(f); r != Queued {
			b.Fatalf("Deliver = %d, want Queued", r)
		}
		if i++; i == cfg.SendQueue/2 {
			i = 0
			c.mu.Lock()
			c.dropQueueLocked()
			c.mu.Unlock()
		}
	}
}

// BenchmarkDeliverConflating is one Deliver to a conflating Conn whose
// queue stays full: pongs of n exchanges in turn, behind a writer stuck
// on a full socket. ns/op is the walks spread over the deliveries; 400
// exchanges in a queue of 256 leave less room after each walk.
func BenchmarkDeliverConflating(b *testing.B) {
	for _, bc := range []struct{ n, queue int }{{3, 256}, {100, 256}, {400, 256}, {1000, 1024}} {
		n := bc.n
		b.Run(fmt.Sprintf("exchanges=%d/queue=%d", n, bc.queue), func(b *testing.B) {
			cfg := testConfig(nil)
			cfg.SendQueue, cfg.Conflate = bc.queue, true
			sock := newMemSock(1)
			sock.room = 0
			c := benchConn(b, sock, cfg)
			frames := make([]*Frame, n)
			for i := range frames {
				frames[i] = benchFrame()
				frames[i].Conflate = ConflateKey{Exchange: fmt.Sprintf("exchange%d", i), Kind: ConflatePong}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if r := c.Deliver(frames[i]); r != Queued {
					b.Fatalf("Deliver = %d, want Queued", r)
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}
