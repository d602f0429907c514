package hub

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// slowReader reads at most 1-4 KB per call, pausing a few microseconds
// first: a client that drains its socket in small, uneven bites, so the
// server's writes keep coming up short.
type slowReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Duration(5+s.rng.IntN(11)) * time.Microsecond)
	return s.r.Read(p[:min(len(p), 1024+s.rng.IntN(3*1024))])
}

// A client that reads slowly while it sends pings: the pong replies must
// come between the server's frames, never inside one (RFC 6455 5.4). Every
// frame is parsed strictly, and the pongs must arrive whole and in order.
func TestSlowReaderWithPingsGetsWholeFrames(t *testing.T) {
	const rounds, pongs = 3, 2000
	s := newTestServer(t, Options{
		SendQueue:  pongs + 10, // the test is about framing, not slow consumers
		ClientRate: 1e9, ClientBurst: 1e9,
	})
	for round := range rounds {
		t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) {
			slowReaderRound(t, s, pongs, uint64(round))
		})
	}
}

func slowReaderRound(t *testing.T, s *testServer, pongs int, seed uint64) {
	// A 4 KB receive buffer, set before the connection is made so that
	// the window is small from the start: the server's writes come up
	// short all the time.
	c, err := hubtest.TryRawDialWith(t, &net.Dialer{Control: smallReceiveBuffer},
		s.wsURL("exchanges=gateio"), hubtest.Token(t, "slow", time.Hour, "gateio"))
	if err != nil {
		t.Fatal(err)
	}
	// Buffered above the slow reads, so that the many small ping replies
	// cost the test a parse each, not a pause each.
	r := bufio.NewReaderSize(&slowReader{r: c.Reader(), rng: rand.New(rand.NewPCG(seed, 1))}, 4096)
	first, err := hubtest.ReadServerFrame(r)
	if err != nil || !strings.Contains(string(first.Payload), `"subscribed"`) {
		t.Fatalf("first frame %q, %v", first.Payload, err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // pings every 10 µs until the pongs are all read
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c.TryWriteFrame(true, wsframe.OpPing, []byte("abcd")) != nil {
				return
			}
			time.Sleep(10 * time.Microsecond)
		}
	}()
	go func() { // pongs of 1.5-6 KB, as fast as the hub takes them
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 2))
		for i := range pongs {
			pad := strings.Repeat("p", 1500+rng.IntN(4500))
			if err := s.Publish(fmt.Appendf(nil, `{"exchange":"gateio","latency":%d,"pad":%q}`, i, pad)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	next, pingReplies := 0, 0
	for next < pongs {
		// A deadline per frame, not per round: a loaded machine is slow,
		// a missing frame is not.
		_ = c.Conn.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
		f, err := hubtest.ReadServerFrame(r)
		if err != nil {
			t.Fatalf("after pong %d and %d ping replies: %v", next, pingReplies, err)
		}
		switch f.Opcode {
		case wsframe.OpPong:
			if string(f.Payload) != "abcd" {
				t.Fatalf("ping reply %q, want abcd", f.Payload)
			}
			pingReplies++
		case wsframe.OpText:
			if hubtest.IsHealthMessage(f.Payload) {
				continue
			}
			var env struct {
				Type string `json:"type"`
				Data struct {
					Latency int `json:"latency"`
				} `json:"data"`
			}
			if err := json.Unmarshal(f.Payload, &env); err != nil || env.Type != "exchange:pong" {
				t.Fatalf("frame %q: %v", hubtest.Truncate(f.Payload), err)
			}
			if env.Data.Latency != next {
				t.Fatalf("pong %d arrived where pong %d was due", env.Data.Latency, next)
			}
			next++
		default:
			t.Fatalf("unexpected frame %#x", byte(f.Opcode))
		}
	}
	if pingReplies == 0 {
		t.Fatal("no ping was answered: the test did not exercise control frames")
	}
}

// errIsClosed reports whether err is the end of a connection.
func errIsClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// A client behind TLS that never reads must not hold up anyone: on a
// connection without a non-blocking write, delivery only queues, and the
// writer goroutine alone waits on the socket. The reading client gets
// every pong while the stuck one is still connected.
func TestNeverReadingTLSClientDoesNotDelayOthers(t *testing.T) {
	srv, err := NewServer(Options{
		Verifier:  hubtest.Verifier(t),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		SendQueue: 64, WriteTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
	})
	tok := hubtest.Token(t, "tls", time.Hour, "gateio")
	wsURL := "wss" + strings.TrimPrefix(hs.URL, "https") + "/ws?exchanges=gateio"

	// The stuck client: a TLS handshake, the WebSocket upgrade, then no
	// reads at all, through a small receive buffer.
	stuck, err := tls.DialWithDialer(&net.Dialer{Control: smallReceiveBuffer}, "tcp", hs.Listener.Addr().String(),
		&tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Close() })
	fmt.Fprintf(stuck, "GET /ws?exchanges=gateio HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	waitFor(t, "the stuck client to register", func() bool { return srv.Clients() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), hubtest.ReadTimeout)
	defer cancel()
	reader, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient: hs.Client(), HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.CloseNow()
	reader.SetReadLimit(1 << 20)
	if _, b, err := reader.Read(ctx); err != nil || !strings.Contains(string(b), "subscribed") {
		t.Fatalf("subscribed reply: %s %v", b, err)
	}

	// Far more than any socket buffers: the stuck client's socket is full
	// long before the end, and its queue overflows.
	const pongs = 1000
	pad := strings.Repeat("t", 14_000)
	published := make(chan error, 1)
	go func() {
		for i := range pongs {
			if err := srv.Publish(fmt.Appendf(nil, `{"exchange":"gateio","latency":%d,"pad":%q}`, i, pad)); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	for i := 0; i < pongs; i++ {
		rctx, rcancel := context.WithTimeout(context.Background(), hubtest.ReadTimeout)
		_, b, err := reader.Read(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("pong %d of %d: %v (Publish blocked on the stuck client?)", i, pongs, err)
		}
		if hubtest.IsHealthMessage(b) {
			i--
			continue
		}
		if !strings.Contains(string(b), fmt.Sprintf(`"latency":%d,`, i)) {
			t.Fatalf("pong %d: %.80s", i, b)
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stuck client to be closed", func() bool {
		return testCounter(srv.metrics.ClientCloses.WithLabelValues("slow_consumer"))+
			testCounter(srv.metrics.ClientCloses.WithLabelValues("write_timeout")) == 1
	})
}

// A ping flood takes from the client's token bucket like messages do:
// past the burst the flooder is closed with 1008, and the pings refused
// on the way are counted; a reading client still gets every pong.
func TestPingFloodIsClosed(t *testing.T) {
	s := newTestServer(t, Options{ClientRate: 10, ClientBurst: 20})
	reader := s.dial(t, "exchanges=gateio", "gateio")
	reader.ReadType("subscribed")
	flooder := hubtest.RawDial(t, s.wsURL(""), hubtest.Token(t, "flood", time.Hour, "*"))
	payload := []byte(strings.Repeat("f", wsframe.MaxControlPayload))
	go func() {
		for range 10_000 {
			if flooder.TryWriteFrame(true, wsframe.OpPing, payload) != nil {
				return // closed, as it should be
			}
		}
	}()
	replies, code := 0, -1
	_ = flooder.Conn.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
	for code == -1 {
		f, err := hubtest.ReadServerFrame(flooder.Reader())
		if err != nil {
			t.Fatalf("flooder: no close frame after %d ping replies: %v", replies, err)
		}
		switch f.Opcode {
		case wsframe.OpPong:
			replies++
		case wsframe.OpClose:
			code, _, _ = wsframe.ParseClosePayload(f.Payload)
		}
	}
	if code != wsframe.ClosePolicyViolation {
		t.Fatalf("flooder closed with %d, want 1008", code)
	}
	_ = flooder.TryWriteFrame(true, wsframe.OpClose, wsframe.AppendClosePayload(nil, code, ""))
	if replies > 40 { // the burst, and what the bucket refills meanwhile
		t.Fatalf("%d pings answered, want about the burst of 20", replies)
	}
	if got := testCounter(s.metrics.RateLimited); got < 21 {
		t.Fatalf("%v refusals counted, want more than the burst", got)
	}
	waitFor(t, "the close to be counted", func() bool {
		return testCounter(s.metrics.ClientCloses.WithLabelValues("rate_limited")) == 1
	})
	for i := range 20 {
		s.publish(t, "gateio", i)
		if m := reader.ReadType("exchange:pong"); !strings.Contains(string(m.Data), fmt.Sprintf(`"latency":%d`, i)) {
			t.Fatalf("pong %d: %s", i, m.Raw)
		}
	}
}

// Once a close frame is out, nothing follows it: pongs published while
// the client closes stop at the close frame, whoever sent it first.
func TestNothingAfterTheCloseFrame(t *testing.T) {
	s := newTestServer(t, Options{SendQueue: 10_000})
	for round := range 5 {
		c := hubtest.RawDial(t, s.wsURL("exchanges=gateio"), hubtest.Token(t, "close", time.Hour, "gateio"))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.publish(t, "gateio", i)
			}
		}()
		_ = c.Conn.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
		r := c.Reader()
		for range 10 + round*50 { // let pongs flow first
			if _, err := hubtest.ReadServerFrame(r); err != nil {
				t.Fatal(err)
			}
		}
		c.WriteFrame(true, wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.CloseNormal, "bye"))
		for {
			f, err := hubtest.ReadServerFrame(r)
			if err != nil {
				t.Fatalf("round %d: no close frame: %v", round, err)
			}
			if f.Opcode == wsframe.OpClose {
				break
			}
		}
		rest, err := io.ReadAll(r)
		close(stop)
		<-done
		if len(rest) > 0 {
			t.Fatalf("round %d: %d bytes after the close frame: % x", round, len(rest), rest[:min(len(rest), 16)])
		}
		if err != nil && !errIsClosed(err) {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// A message whose fragments trickle in is closed once it has been open
// longer than MessageTimeout.
func TestMessageLeftOpenIsClosed(t *testing.T) {
	s := newTestServer(t, Options{MessageTimeout: 300 * time.Millisecond})
	c := hubtest.RawDial(t, s.wsURL(""), hubtest.Token(t, "trickle", time.Hour, "*"))
	c.WriteFrame(false, wsframe.OpText, []byte(`{"type":`))
	if code := c.ReadClose(); code != wsframe.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	c.WriteFrame(true, wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.ClosePolicyViolation, ""))
	waitFor(t, "the close to be counted", func() bool {
		return testCounter(s.metrics.ClientCloses.WithLabelValues("message_timeout")) == 1
	})
}

// A client whose socket is full and who keeps pinging: the replies to its
// pings queue behind the stuck data like everything else, and the client
// is dropped by the write timeout, counted as write_timeout, not ended
// early by a timeout of the library's own (5 s) as a connection error.
func TestStuckPingerDroppedByWriteTimeout(t *testing.T) {
	const writeTimeout = 6 * time.Second // longer than the library's 5 s
	s := newTestServer(t, Options{WriteTimeout: writeTimeout, SendQueue: 100_000, ClientRate: 1e6, ClientBurst: 1e6})
	c, err := hubtest.TryRawDialWith(t, &net.Dialer{Control: smallReceiveBuffer}, s.wsURL("exchanges=gateio"),
		hubtest.Token(t, "stuck", time.Hour, "gateio"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client to register", func() bool { return s.Clients() == 1 })
	pad := strings.Repeat("s", 12_000)
	for range 2000 { // 24 MB: far more than the socket buffers hold
		if err := s.Publish([]byte(`{"exchange":"gateio","pad":"` + pad + `"}`)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if c.TryWriteFrame(true, wsframe.OpPing, []byte("stuck")) != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-pinged
	}()
	deadline := time.Now().Add(writeTimeout + hubtest.ReadTimeout)
	for s.Clients() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stuck client was never dropped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the close to be counted", func() bool {
		return testCounter(s.metrics.ClientCloses.WithLabelValues("write_timeout")) == 1
	})
	if n := testCounter(s.metrics.ClientCloses.WithLabelValues("error")); n != 0 {
		t.Fatalf("%v closes counted as connection errors", n)
	}
}
