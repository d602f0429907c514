package hub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkFanout publishes one pong per iteration to n subscribers over
// real loopback WebSockets and waits until every subscriber has read every
// pong: ns/op is the cost of one pong delivered to all n.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchFanout(b, n)
		})
	}
}

func benchFanout(b *testing.B, n int) {
	s := newTestServer(b, Options{})
	var received atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c := s.dial(b, "exchanges=gateio", "*").Conn
		conns[i] = c
		if _, _, err := c.Read(context.Background()); err != nil { // subscribed
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	payload := []byte(`{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"}`)
	b.ReportAllocs()
	want := int64(0)
	for b.Loop() {
		if err := s.Publish(payload); err != nil {
			b.Fatal(err)
		}
		want += int64(n)
		// Keep the run honest: never more than a few pongs in flight.
		for received.Load() < want-int64(4*n) {
			time.Sleep(10 * time.Microsecond)
		}
	}
	for received.Load() < want {
		time.Sleep(10 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
	for _, c := range conns {
		c.CloseNow()
	}
	wg.Wait()
}
