package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// seqPong is a pong whose latency carries a sequence number.
func seqPong(exchange string, seq int) string {
	return fmt.Sprintf(`{"exchange":%q,"latency":%d,"status":"connected"}`, exchange, seq)
}

func redisClient(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	opts.DialTimeout = 500 * time.Millisecond
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// readSeqs reads pongs until it sees last, and returns the sequence
// numbers in arrival order.
func readSeqs(c *hubtest.Client, last int) ([]int, error) {
	var seqs []int
	for {
		m, err := c.TryRead(30 * time.Second)
		if err != nil {
			return seqs, err
		}
		if m.Type != "exchange:pong" || m.Snapshot {
			continue
		}
		var d struct{ Latency int }
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return seqs, err
		}
		seqs = append(seqs, d.Latency)
		if d.Latency == last {
			return seqs, nil
		}
	}
}

func TestRedisKilledAndRestartedUnderLoad(t *testing.T) {
	redis := hubtest.StartRedis(t)
	s := startServer(t, redis.URL(), "--handshake-rate", "0")
	s.waitReady()
	tok := hubtest.Token(t, "load", time.Hour, "*")
	const clients = 20
	conns := make([]*hubtest.Client, clients)
	for i := range conns {
		conns[i] = hubtest.MustDial(t, s.ws("exchanges=gateio"), tok)
		conns[i].ReadType("subscribed")
	}
	const last = 1_000_000
	results := make([]chan []int, clients)
	for i, c := range conns {
		results[i] = make(chan []int, 1)
		go func() {
			seqs, err := readSeqs(c, last)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			results[i] <- seqs
		}()
	}

	// Publish a numbered stream; remember which pongs Redis handed to a
	// subscriber (pongcast is the only one on this private Redis).
	pub := redisClient(t, redis.URL())
	var mu sync.Mutex
	delivered := map[int]bool{}
	seq := 0
	publish := func(n int) {
		for range n {
			seq++
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			got, err := pub.Publish(ctx, s.channel, seqPong("gateio", seq)).Result()
			cancel()
			if err == nil && got > 0 {
				mu.Lock()
				delivered[seq] = true
				mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}
	publish(200)
	redis.Stop()
	s.waitStatus("/readyz", 503)
	publish(3) // into the void: Redis is down
	redis.Start()
	s.waitReady()
	// go-redis's pool backs off after failed dials; wait for it to notice.
	for pub.Ping(context.Background()).Err() != nil {
		time.Sleep(50 * time.Millisecond)
	}
	publish(200)
	if _, err := pub.Publish(context.Background(), s.channel, seqPong("gateio", last)).Result(); err != nil {
		t.Fatalf("final publish: %v (delivered %d of %d)", err, len(delivered), seq)
	}

	for i := range conns {
		seqs := <-results[i]
		seen := map[int]bool{}
		prev := 0
		for _, n := range seqs {
			if seen[n] {
				t.Fatalf("client %d: pong %d delivered twice", i, n)
			}
			if n <= prev {
				t.Fatalf("client %d: pong %d after %d", i, n, prev)
			}
			seen[n], prev = true, n
		}
		for n := range delivered {
			if !seen[n] {
				t.Fatalf("client %d: pong %d reached pongcast's subscription but not the client", i, n)
			}
		}
	}
	if len(delivered) < 400 {
		t.Fatalf("only %d pongs reached the subscription", len(delivered))
	}
}

func TestSlowRedisStillDelivers(t *testing.T) {
	redis := hubtest.StartRedis(t)
	proxy := hubtest.StartDelayProxy(t, strings.TrimSuffix(strings.TrimPrefix(redis.URL(), "redis://"), "/0"), 300*time.Millisecond)
	s := startServer(t, "redis://"+proxy.Addr()+"/0")
	s.waitReady()
	c := hubtest.MustDial(t, s.ws("exchanges=gateio"), hubtest.Token(t, "a", time.Hour, "*"))
	c.ReadType("subscribed")
	for i := range 5 {
		hubtest.Publish(t, redis.URL(), s.channel, seqPong("gateio", i+1))
	}
	seqs, err := readSeqs(c, 5)
	if err != nil || len(seqs) != 5 {
		t.Fatalf("got %v, %v; want pongs 1-5", seqs, err)
	}
	if got := s.metric("pongcast_redis_reconnects_total"); got != "0" {
		t.Fatalf("a slow Redis caused %s reconnects", got)
	}
}

func TestInvalidPongFlood(t *testing.T) {
	redisURL := hubtest.RedisURL(t)
	s := startServer(t, redisURL)
	s.waitReady()
	c := hubtest.MustDial(t, s.ws("exchanges=gateio"), hubtest.Token(t, "a", time.Hour, "*"))
	c.ReadType("subscribed")

	pub := redisClient(t, redisURL)
	before := processCPU()
	start := time.Now()
	const rounds, badPerRound = 50, 200
	for r := 1; r <= rounds; r++ {
		pipe := pub.Pipeline()
		for i := range badPerRound {
			bad := []string{`{"exchange":"gate io"}`, `not json`, `{"exchange":"gateio","latency":-1}`, "\xff\xfe", `[]`}[i%5]
			pipe.Publish(context.Background(), s.channel, bad)
		}
		pipe.Publish(context.Background(), s.channel, seqPong("gateio", r))
		if _, err := pipe.Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	seqs, err := readSeqs(c, rounds)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != rounds {
		t.Fatalf("valid pongs delivered: %d of %d", len(seqs), rounds)
	}
	elapsed := time.Since(start)
	cpu := processCPU() - before
	perPong := cpu / (rounds * badPerRound)
	t.Logf("%d invalid pongs in %s; process CPU %s (%s per pong, publisher and client included)", rounds*badPerRound, elapsed, cpu, perPong)
	// Generous: a bound that catches a pathological path, not a benchmark.
	if perPong > time.Millisecond {
		t.Fatalf("%s of CPU per invalid pong", perPong)
	}
	lines := strings.Count(s.logs.String(), `msg="pong rejected"`)
	if allowed := 5 + int(elapsed.Seconds()+1)*1; lines > allowed {
		t.Fatalf("%d rejection log lines for %d rejections in %s; want at most %d", lines, rounds*badPerRound, elapsed, allowed)
	}
	if !strings.Contains(s.logs.String(), "suppressed=") && lines < rounds*badPerRound {
		t.Log("no line reported suppressed counts yet (the flood ended inside one interval)")
	}
}

func TestClientChurnLeavesNothingBehind(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t), "--handshake-rate", "0", "--max-connections-per-user", "0")
	s.waitReady()
	tok := hubtest.Token(t, "churn", time.Hour, "*")

	// Warm up, then take the baseline.
	w := hubtest.MustDial(t, s.ws("exchanges=gateio"), tok)
	w.ReadType("subscribed")
	w.Conn.Close(websocket.StatusNormalClosure, "")
	waitClients(t, s, "0")
	baseGoroutines, baseHeap := settle()

	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		pub := redisClient(t, s.redis)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				pub.Publish(context.Background(), s.channel, seqPong([]string{"gateio", "binance"}[i%2], i))
			}
		}
	}()

	const total, parallel = 1000, 50
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range total {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			url := s.ws("exchanges=" + []string{"gateio", "binance", "*"}[i%3])
			stay := time.Duration(rand.IntN(200)) * time.Millisecond
			if i%3 == 2 {
				// Vanish with a TCP reset, no close frame.
				raw, err := hubtest.TryRawDial(t, url, tok)
				if err != nil {
					t.Errorf("dial %d: %v", i, err)
					return
				}
				time.Sleep(stay)
				raw.Reset()
				return
			}
			c, _, err := hubtest.Dial(t, url, tok, nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			// Stay a random while, reading, then leave.
			deadline := time.Now().Add(stay)
			for time.Now().Before(deadline) {
				if _, err := c.TryRead(time.Until(deadline) + time.Millisecond); err != nil && !errors.Is(err, context.DeadlineExceeded) {
					break
				}
			}
			if i%3 == 0 {
				c.Conn.Close(websocket.StatusNormalClosure, "bye")
			} else {
				c.Conn.CloseNow()
			}
		}()
	}
	wg.Wait()
	close(stop)
	pubWG.Wait()
	waitClients(t, s, "0")

	goroutines, heap := settle()
	t.Logf("goroutines %d -> %d, heap in use %d KiB -> %d KiB after %d clients", baseGoroutines, goroutines, baseHeap>>10, heap>>10, total)
	if goroutines > baseGoroutines+5 {
		t.Fatalf("goroutines grew from %d to %d", baseGoroutines, goroutines)
	}
	if heap > baseHeap+8<<20 {
		t.Fatalf("heap in use grew from %d KiB to %d KiB", baseHeap>>10, heap>>10)
	}
}

// settle lets finished goroutines exit and returns the goroutine count and
// heap in use after a GC.
func settle() (int, uint64) {
	var n int
	for range 100 {
		runtime.GC()
		n = runtime.NumGoroutine()
		time.Sleep(20 * time.Millisecond)
		if runtime.NumGoroutine() == n {
			break
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

func waitClients(t *testing.T, s *server, n string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for s.metric("pongcast_clients_connected") != n {
		if time.Now().After(deadline) {
			t.Fatalf("clients connected = %s, want %s", s.metric("pongcast_clients_connected"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSlowlorisHandshakeTimesOut(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t), "--handshake-timeout", "500ms")
	addr := strings.TrimPrefix(s.base, "http://")
	for _, partial := range []string{"", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := io.WriteString(conn, partial); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("partial handshake %q: the server held the connection: %v", partial, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("partial handshake %q closed after %s, want about 0.5s", partial, d)
		}
	}
}
