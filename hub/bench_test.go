package hub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/hub/hubtest"
)

var benchPong = []byte(`{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"}`)

// BenchmarkRoute routes one pong to n subscribers over in-memory
// connections through the real handler, hub and WebSocket library, and
// waits until every subscriber's frame is written: ns/op is one pong
// delivered to all n. allocs/delivery is the heap allocations per
// delivered frame, and envelopes/pong the encodings per pong.
func BenchmarkRoute(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { benchRoute(b, n) })
	}
}

// sinkServer is a server with n subscribers of gateio over in-memory
// connections, their writers warmed up; wait(w) returns once w frames
// have been written in all. Shutdown when done.
func sinkServer(b *testing.B, n int) (s *Server, written *atomic.Int64, wait func(int64)) {
	s, err := NewServer(Options{
		Verifier:  hubtest.Verifier(b),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		SendQueue: 1024,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	tok := hubtest.Token(b, "bench", time.Hour, "*")
	written = new(atomic.Int64)
	sinks := make([]*sinkConn, n)
	for i := range sinks {
		c, code := connectSink(s, tok, "exchanges=gateio", written)
		if code != 101 && code != 200 {
			b.Fatalf("handshake %d: HTTP %d", i, code)
		}
		sinks[i] = c
	}
	b.Cleanup(func() {
		for _, c := range sinks {
			c.Close()
		}
	})
	wait = func(want int64) {
		for written.Load() < want {
			runtime.Gosched()
		}
	}
	// Each client's subscribed reply is its first write; then warm up the
	// writers.
	wait(int64(n))
	for range 3 {
		_ = s.Publish(benchPong)
	}
	wait(4 * int64(n))
	return s, written, wait
}

func benchRoute(b *testing.B, n int) {
	s, written, wait := sinkServer(b, n)

	// What a pong costs with nobody to deliver to: validation, envelope,
	// frame. The rest of the allocations are per delivery.
	var ms0, ms1 runtime.MemStats
	const probe = 200
	runtime.ReadMemStats(&ms0)
	for range probe {
		_ = s.Publish(benchPongNobody)
	}
	runtime.ReadMemStats(&ms1)
	perPong := float64(ms1.Mallocs-ms0.Mallocs) / probe

	base := written.Load()
	routed0 := testCounter(s.metrics.PongsRouted)
	runtime.ReadMemStats(&ms0)
	pongs := 0
	for b.Loop() {
		if err := s.Publish(benchPong); err != nil {
			b.Fatal(err)
		}
		pongs++
		// Let the writers drain before the next pong, as at real rates.
		wait(base + int64(pongs*n))
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	deliveries := float64(pongs * n)
	perDelivery := (float64(ms1.Mallocs-ms0.Mallocs) - perPong*float64(pongs)) / deliveries
	b.ReportMetric(max(0, perDelivery), "allocs/delivery")
	b.ReportMetric(perPong, "allocs/pong")
	b.ReportMetric((testCounter(s.metrics.PongsRouted)-routed0)/float64(pongs), "envelopes/pong")
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkWriteLockDuringFanout: how long a taker of the hub's write
// lock (a subscribe, an unsubscribe, the health timer) waits while pongs
// fan out back to back to n subscribers, each delivered to all before the
// next: ns/op is one take of the lock, max-ns the longest.
func BenchmarkWriteLockDuringFanout(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			s, written, wait := sinkServer(b, n)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					next := written.Load() + int64(n)
					_ = s.Publish(benchPong)
					wait(next)
				}
			}()
			var longest time.Duration
			for b.Loop() {
				start := time.Now()
				s.hub.mu.Lock()
				s.hub.mu.Unlock()
				longest = max(longest, time.Since(start))
			}
			b.StopTimer()
			close(stop)
			<-done
			b.ReportMetric(float64(longest.Nanoseconds()), "max-ns")
		})
	}
}

var benchPongNobody = []byte(`{"exchange":"nobody","latency":45,"timestamp":1765738899909,"status":"connected"}`)

// BenchmarkFanoutLoopback is BenchmarkRoute over real loopback sockets
// and real WebSocket clients: the kernel included.
func BenchmarkFanoutLoopback(b *testing.B) {
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
	b.ReportAllocs()
	want := int64(0)
	for b.Loop() {
		if err := s.Publish(benchPong); err != nil {
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
