package wsconn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memSock is the server's end of an in-memory connection that behaves
// like a small socket: its send buffer holds a few KB, TryWrite takes a
// random part of what fits, Write waits for room. The test reads the
// other end with drain and writes client frames with send.
type memSock struct {
	rng *mrand.Rand // guarded by mu

	mu      sync.Mutex
	cond    *sync.Cond
	out     []byte
	room    int
	closed  bool
	late    bool // a write deadline has passed
	blocked int  // Writes waiting for room now

	in *io.PipeReader
	pw *io.PipeWriter
}

func newMemSock(seed uint64) *memSock {
	pr, pw := io.Pipe()
	s := &memSock{rng: mrand.New(mrand.NewPCG(seed, 3)), room: 4096, in: pr, pw: pw}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *memSock) TryWrite(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	n := min(len(p), s.room-len(s.out))
	if n > 0 {
		n = 1 + s.rng.IntN(n) // a short write of any size
	}
	s.out = append(s.out, p[:n]...)
	s.cond.Broadcast()
	return n, nil
}

func (s *memSock) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		s.mu.Lock()
		for !s.closed && !s.late && len(s.out) >= s.room {
			s.blocked++
			s.cond.Broadcast()
			s.cond.Wait()
			s.blocked--
		}
		if s.closed {
			s.mu.Unlock()
			return written, net.ErrClosed
		}
		if s.late {
			s.mu.Unlock()
			return written, os.ErrDeadlineExceeded
		}
		n := min(len(p)-written, s.room-len(s.out))
		s.out = append(s.out, p[written:written+n]...)
		written += n
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	return written, nil
}

// drain takes up to max bytes the server wrote, waiting for some; it
// returns io.EOF once the socket is closed and empty.
func (s *memSock) drain(max int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.out) == 0 && !s.closed {
		s.cond.Wait()
	}
	if len(s.out) == 0 {
		return nil, io.EOF
	}
	n := min(max, len(s.out))
	b := bytes.Clone(s.out[:n])
	s.out = append(s.out[:0], s.out[n:]...)
	s.cond.Broadcast()
	return b, nil
}

// waitBlocked waits until a Write is waiting for room: the writer is
// stuck inside its batch.
func (s *memSock) waitBlocked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.blocked == 0 {
		s.cond.Wait()
	}
}

func (s *memSock) Read(p []byte) (int, error) { return s.in.Read(p) }

func (s *memSock) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.in.Close()
	return nil
}

// send writes one masked client frame into the server's read side.
func (s *memSock) send(op wsframe.Opcode, payload []byte) error {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	_, err := s.pw.Write(wsframe.AppendFrame(nil, op, payload, &mask))
	return err
}

func (s *memSock) LocalAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2808} }
func (s *memSock) RemoteAddr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (s *memSock) SetDeadline(time.Time) error     { return nil }
func (s *memSock) SetReadDeadline(time.Time) error { return nil }
func (s *memSock) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = !t.IsZero() && !t.After(time.Now())
	s.cond.Broadcast()
	return nil
}

// drainReader reads what the server wrote in random bites.
type drainReader struct {
	s   *memSock
	rng *mrand.Rand
	buf []byte
}

func (r *drainReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		b, err := r.s.drain(1 + r.rng.IntN(3000))
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// hijacker is a ResponseWriter whose Hijack hands over sock.
type hijacker struct {
	*httptest.ResponseRecorder
	sock net.Conn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.sock, bufio.NewReadWriter(bufio.NewReader(h.sock), bufio.NewWriter(h.sock)), nil
}

// counter is an Observer.
type counter struct{ delivered, dropped, conflated atomic.Int64 }

func (c *counter) Delivered(*Frame, time.Time) { c.delivered.Add(1) }
func (c *counter) Dropped(n int)               { c.dropped.Add(int64(n)) }
func (c *counter) Conflated(n int)             { c.conflated.Add(int64(n)) }

// accept upgrades over sock; the 101 is held back, as in a session.
func accept(t testing.TB, sock net.Conn, cfg *Config) *Conn {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	c, err := Accept(&hijacker{ResponseRecorder: httptest.NewRecorder(), sock: sock}, r, websocket.AcceptOptions{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startReader runs c's reader as a session does (the library answers
// pings in it) and finishes c when the read fails; the channel closes
// then.
func startReader(c *Conn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := c.Read(); err != nil {
				c.Finish()
				return
			}
		}
	}()
	return done
}

// eachSeed runs round as a subtest for each of 8 seeds.
func eachSeed(t *testing.T, round func(t *testing.T, seed uint64)) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { round(t, seed) })
	}
}

func testConfig(obs Observer) *Config {
	return &Config{SendQueue: 100_000, WriteTimeout: time.Minute, CloseTimeout: time.Minute, MaxMessageBytes: 1 << 16, Observer: obs}
}

// Short writes of random sizes, data frames delivered while the library
// answers a stream of pings, then a close: the byte stream the client
// gets always parses, data frames arrive whole and in order, every ping
// is answered, and nothing follows the close frame.
func TestShortWritesAndControlFramesNeverInterleave(t *testing.T) { eachSeed(t, interleaveRound) }

func interleaveRound(t *testing.T, seed uint64) {
	const frames, pings = 400, 300
	sock := newMemSock(seed)
	obs := &counter{}
	c := accept(t, sock, testConfig(obs))
	c.FinishHandshake()
	readDone := startReader(c)

	var senders sync.WaitGroup
	senders.Add(2)
	go func() {
		defer senders.Done()
		rng := mrand.New(mrand.NewPCG(seed, 4))
		for i := range frames {
			payload := fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), rng.IntN(5000)))
			f := TextFrame(payload)
			f.Received = time.Now()
			if r := c.Deliver(f); r != Sent && r != Queued {
				t.Errorf("frame %d: Deliver = %d", i, r)
				return
			}
		}
	}()
	go func() {
		defer senders.Done()
		for i := range pings {
			if err := sock.send(wsframe.OpPing, []byte(strconv.Itoa(i))); err != nil {
				t.Errorf("ping %d: %v", i, err)
				return
			}
		}
	}()

	r := &drainReader{s: sock, rng: mrand.New(mrand.NewPCG(seed, 5))}
	br := bufio.NewReader(r)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	next, pongs := 0, 0
	closed, closing := false, false
	for !closed {
		f, err := hubtest.ReadServerFrame(br)
		if err != nil {
			t.Fatalf("after frame %d and %d pongs: %v", next, pongs, err)
		}
		switch f.Opcode {
		case wsframe.OpText:
			if want := fmt.Sprintf(`{"n":%d,`, next); !bytes.HasPrefix(f.Payload, []byte(want)) {
				t.Fatalf("frame %q, want %s...", hubtest.Truncate(f.Payload), want)
			}
			next++
		case wsframe.OpPong:
			if string(f.Payload) != strconv.Itoa(pongs) {
				t.Fatalf("pong %q, want %d", f.Payload, pongs)
			}
			pongs++
		case wsframe.OpClose:
			closed = true
		}
		// Close once every frame and every pong is in: a ping still on
		// its way when the close goes out rightly gets no answer.
		if !closing && next == frames && pongs == pings {
			closing = true
			senders.Wait()
			c.Close(Cause{Code: wsframe.CloseNormal, Reason: "done", Flush: true})
		}
	}
	if next != frames || pongs != pings {
		t.Fatalf("got %d frames and %d pongs, want %d and %d", next, pongs, frames, pings)
	}
	if err := sock.send(wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.CloseNormal, "")); err != nil {
		t.Fatal(err)
	}
	<-readDone
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("%d bytes after the close frame (% x), %v", len(rest), rest[:min(len(rest), 16)], err)
	}
	if got := obs.delivered.Load(); got != frames {
		t.Fatalf("observer saw %d deliveries, want %d", got, frames)
	}
}

// The client closes while frames keep being delivered: the library's
// answer is the last frame the client gets, and every Deliver after it
// reports Dropped.
func TestPeerCloseEndsTheStream(t *testing.T) { eachSeed(t, peerCloseRound) }

func peerCloseRound(t *testing.T, seed uint64) {
	sock := newMemSock(seed)
	obs := &counter{}
	c := accept(t, sock, testConfig(obs))
	c.FinishHandshake()
	readDone := startReader(c)
	delivered := make(chan int, 1)
	go func() { // until the connection refuses
		rng := mrand.New(mrand.NewPCG(seed, 6))
		for i := 0; ; i++ {
			f := TextFrame(fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("y"), rng.IntN(3000))))
			f.Received = time.Now()
			if r := c.Deliver(f); r != Sent && r != Queued {
				delivered <- i
				return
			}
		}
	}()

	br := bufio.NewReader(&drainReader{s: sock, rng: mrand.New(mrand.NewPCG(seed, 7))})
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	frames := 0
	for {
		f, err := hubtest.ReadServerFrame(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", frames, err)
		}
		if f.Opcode == wsframe.OpClose {
			if code, _, _ := wsframe.ParseClosePayload(f.Payload); code != wsframe.CloseGoingAway {
				t.Fatalf("close echo with code %d, want the client's 1001", code)
			}
			break
		}
		frames++
		if frames == 20 {
			if err := sock.send(wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.CloseGoingAway, "")); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := <-delivered
	<-readDone
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("%d bytes after the close frame (% x), %v", len(rest), rest[:min(len(rest), 16)], err)
	}
	if got := obs.delivered.Load() + obs.dropped.Load(); got != int64(n+1) {
		t.Fatalf("delivered %d + dropped %d = %d, want the %d frames handed over", obs.delivered.Load(), obs.dropped.Load(), got, n+1)
	}
	if cause := c.Cause(); cause != CausePeerClosed {
		t.Fatalf("cause %+v, want the peer's close", cause)
	}
}

// A slow consumer's close frame does not wait for the batch the writer
// is stuck on: the batch is cut after the frame being written, the frames
// after it are dropped, and the close frame comes next. The stream still
// parses, and every frame handed over is counted once.
func TestSlowConsumerCloseCutsTheBatch(t *testing.T) { eachSeed(t, cutRound) }

func cutRound(t *testing.T, seed uint64) {
	const queue = 50
	sock := newMemSock(seed)
	obs := &counter{}
	cfg := testConfig(obs)
	cfg.SendQueue = queue
	c := accept(t, sock, cfg)
	c.FinishHandshake()
	readDone := startReader(c)
	br := bufio.NewReader(&drainReader{s: sock, rng: mrand.New(mrand.NewPCG(seed, 8))})
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// Fill the socket and the queue while nobody reads, read a little so
	// the writer takes a batch of many frames, then overflow the queue.
	handed := 0
	deliver := func() Result {
		f := TextFrame(fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, handed, bytes.Repeat([]byte("z"), 900)))
		f.Received = time.Now()
		handed++
		return c.Deliver(f)
	}
	for range queue {
		deliver()
	}
	first, err := hubtest.ReadServerFrame(br)
	if err != nil || first.Opcode != wsframe.OpText {
		t.Fatalf("first frame: %v %v", first.Opcode, err)
	}
	for {
		if r := deliver(); r == SlowConsumer {
			break
		} else if r == Dropped {
			t.Fatal("dropped before the queue was full")
		}
	}
	next, closed := 1, false
	for !closed {
		f, err := hubtest.ReadServerFrame(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", next, err)
		}
		switch f.Opcode {
		case wsframe.OpText:
			if want := fmt.Sprintf(`{"n":%d,`, next); !bytes.HasPrefix(f.Payload, []byte(want)) {
				t.Fatalf("frame %q, want %s...", hubtest.Truncate(f.Payload), want)
			}
			next++
		case wsframe.OpClose:
			code, reason, _ := wsframe.ParseClosePayload(f.Payload)
			if code != wsframe.ClosePolicyViolation || reason != "slow consumer" {
				t.Fatalf("close %d %q", code, reason)
			}
			closed = true
		}
	}
	// What the socket held (4 KB: about 4 frames) and the frame being
	// written went out; the rest of the batch did not.
	if next > 10 {
		t.Fatalf("%d of %d frames went out before the close: it waited for the batch", next, handed)
	}
	if err := sock.send(wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.CloseNormal, "")); err != nil {
		t.Fatal(err)
	}
	<-readDone
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("%d bytes after the close frame, %v", len(rest), err)
	}
	if d, x := obs.delivered.Load(), obs.dropped.Load(); d != int64(next) || d+x != int64(handed) {
		t.Fatalf("delivered %d, dropped %d; the client got %d of %d", d, x, next, handed)
	}
}

// Frames delivered before FinishHandshake wait for the 101; it then
// writes them behind the 101 in one write, up to the first live pong,
// which the writer sends with the rest: all in the order delivered, the
// live pong counted once.
func TestFinishHandshakeJoinsWhatIsOwed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	obs := &counter{}
	c := accept(t, server, testConfig(obs))
	readDone := startReader(c)
	for _, label := range []string{"r1", "r2", "a1", "r3"} {
		if r := c.Deliver(labelled(label, 0)); r != Queued {
			t.Fatalf("%s: Deliver = %d, want Queued until FinishHandshake", label, r)
		}
	}
	_ = client.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
	c.FinishHandshake()
	// The first read returns at least the one write: the 101, r1 and r2.
	// (Whether the writer's a1 is in it too depends on timing.)
	buf := make([]byte, 4096)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	first := string(buf[:n])
	if !strings.HasPrefix(first, "HTTP/1.1 101") || !strings.Contains(first, `"r1:"`) || !strings.Contains(first, `"r2:"`) {
		t.Fatalf("first read %q, want the 101 with r1 and r2", first)
	}
	c.Close(flushClose)
	br := bufio.NewReader(io.MultiReader(strings.NewReader(first), client))
	labels, code, _ := readLabels(t, br)
	if got := strings.Join(labels, " "); got != "r1 r2 a1 r3" || code != wsframe.CloseNormal {
		t.Fatalf("the client got %q and close %d, want r1 r2 a1 r3 and %d", got, code, wsframe.CloseNormal)
	}
	_ = client.Close()
	<-readDone
	if d := obs.delivered.Load(); d != 1 {
		t.Fatalf("%d pongs counted delivered, want 1 (a1)", d)
	}
}
