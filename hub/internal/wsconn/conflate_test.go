package wsconn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// labelled is a frame named by label: "r..." is a reply, without a key;
// anything else a pong of the exchange its first letter names ("a2": the
// second pong of exchange a). The payload is a JSON string: the label,
// ":" and pad bytes of padding.
func labelled(label string, pad int) *Frame {
	f := TextFrame([]byte(`"` + label + ":" + strings.Repeat("p", pad) + `"`))
	if label[0] != 'r' {
		f.Received = time.Now()
		f.Conflate = ConflateKey{Exchange: label[:1], Kind: ConflatePong}
	}
	return f
}

// labelOf is the label of a frame's payload.
func labelOf(payload []byte) string {
	label, _, _ := bytes.Cut(bytes.TrimPrefix(payload, []byte(`"`)), []byte(":"))
	return string(label)
}

// queued lists the labels of the frames in c's queue.
func queued(c *Conn) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	labels := make([]string, len(c.queue))
	for i, f := range c.queue {
		_, hl, _ := wsframe.Parse(f.Wire)
		labels[i] = labelOf(f.Wire[hl:])
	}
	return strings.Join(labels, " ")
}

// stuckConn is a Conn over a memSock whose writer is stuck inside the
// frame of a0, a pong of 10 KB the socket has taken part of: whatever is
// delivered next waits in the queue until the test reads. It returns the
// test's end of the socket, past the 101, and the reader's end.
func stuckConn(t *testing.T, cfg *Config) (*Conn, *memSock, *bufio.Reader, <-chan struct{}) {
	t.Helper()
	sock := newMemSock(1)
	c := accept(t, sock, cfg)
	readDone := startReader(c)
	if r := c.Deliver(labelled("a0", 10_000)); r != Queued {
		t.Fatalf("a0: Deliver = %d, want Queued (the 101 is held back)", r)
	}
	c.FinishHandshake() // the socket takes 4 KB: the writer is stuck in a0
	sock.waitBlocked()
	br := bufio.NewReader(&drainReader{s: sock, rng: mrand.New(mrand.NewPCG(1, 9))})
	return c, sock, br, readDone
}

// readLabels reads what the client gets after the 101: the labels of the
// text frames up to the close frame, and the close's code and reason.
func readLabels(t *testing.T, br *bufio.Reader) (labels []string, code int, reason string) {
	t.Helper()
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	for {
		f, err := hubtest.ReadServerFrame(br)
		if err != nil {
			t.Fatalf("after %v: %v", labels, err)
		}
		switch f.Opcode {
		case wsframe.OpText:
			labels = append(labels, labelOf(f.Payload))
		case wsframe.OpClose:
			code, reason, _ = wsframe.ParseClosePayload(f.Payload)
			return labels, code, reason
		}
	}
}

// endConn answers the server's close, waits for the reader to finish and
// checks that nothing followed the close frame.
func endConn(t *testing.T, sock *memSock, br *bufio.Reader, readDone <-chan struct{}) {
	t.Helper()
	if err := sock.send(wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.CloseNormal, "")); err != nil {
		t.Fatal(err)
	}
	<-readDone
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("%d bytes after the close frame, %v", len(rest), err)
	}
}

var flushClose = Cause{Code: wsframe.CloseNormal, Reason: "done", Flush: true}

// A conflating Conn whose queue is full of pongs of three exchanges is not
// closed: each overflow keeps the newest pong of each exchange, where it
// was, and every reply, in order; then the queue may take as many frames
// as there were keys before the next walk. The frame being written (a0)
// is never touched, although newer pongs of its exchange come, and the
// client gets exactly what the queue held, after it.
func TestConflateKeepsTheNewestOfEachKey(t *testing.T) {
	obs := &counter{}
	cfg := testConfig(obs)
	cfg.SendQueue, cfg.Conflate = 6, true
	c, sock, br, readDone := stuckConn(t, cfg)
	for _, step := range []struct {
		deliver   string
		queue     string
		conflated int64
	}{
		{"a1 b1 r1 c1 a2 b2", "a1 b1 r1 c1 a2 b2", 0}, // full
		{"a3", "r1 c1 b2 a3", 3},                      // a1, a2 and b1 superseded; 3 keys: room up to 9
		{"r2 b3 c2 a4 b4", "r1 c1 b2 a3 r2 b3 c2 a4 b4", 3},
		{"r3", "r1 r2 c2 a4 b4 r3", 7}, // c1, b2, a3, b3 superseded
	} {
		for _, label := range strings.Fields(step.deliver) {
			if r := c.Deliver(labelled(label, 0)); r != Queued {
				t.Fatalf("%s: Deliver = %d, want Queued", label, r)
			}
		}
		if got := queued(c); got != step.queue {
			t.Fatalf("after %s the queue holds %q, want %q", step.deliver, got, step.queue)
		}
		if got := obs.conflated.Load(); got != step.conflated {
			t.Fatalf("after %s: %d conflated, want %d", step.deliver, got, step.conflated)
		}
	}
	c.Close(flushClose)
	labels, code, _ := readLabels(t, br)
	if got, want := strings.Join(labels, " "), "a0 r1 r2 c2 a4 b4 r3"; got != want || code != wsframe.CloseNormal {
		t.Fatalf("the client got %q and close %d, want %q and %d", got, code, want, wsframe.CloseNormal)
	}
	endConn(t, sock, br, readDone)
	// 11 pongs handed over: 4 written, 7 superseded, none lost.
	if d, x, s := obs.delivered.Load(), obs.dropped.Load(), obs.conflated.Load(); d != 4 || x != 0 || s != 7 {
		t.Fatalf("delivered %d, dropped %d, conflated %d; want 4, 0, 7", d, x, s)
	}
}

// Replies have no key, so nothing makes room for them: once they alone
// are more than SendQueue, a conflating Conn closes the client as a slow
// consumer, as one that does not conflate would. The frame being written
// is finished first.
func TestConflatingConnClosesAFloodOfReplies(t *testing.T) {
	obs := &counter{}
	cfg := testConfig(obs)
	cfg.SendQueue, cfg.Conflate = 4, true
	c, sock, br, readDone := stuckConn(t, cfg)
	for _, label := range strings.Fields("a1 r1 r2 r3 r4") { // r4: 4 replies and 1 key fit
		if r := c.Deliver(labelled(label, 0)); r != Queued {
			t.Fatalf("%s: Deliver = %d, want Queued", label, r)
		}
	}
	if r := c.Deliver(labelled("r5", 0)); r != SlowConsumer {
		t.Fatalf("r5: Deliver = %d, want SlowConsumer", r)
	}
	labels, code, reason := readLabels(t, br)
	if got := strings.Join(labels, " "); got != "a0" || code != wsframe.ClosePolicyViolation || reason != "slow consumer" {
		t.Fatalf("the client got %q and close %d %q, want a0 and 1008 slow consumer", got, code, reason)
	}
	endConn(t, sock, br, readDone)
	if d, x, s := obs.delivered.Load(), obs.dropped.Load(), obs.conflated.Load(); d != 1 || x != 1 || s != 0 {
		t.Fatalf("delivered %d, dropped %d, conflated %d; want 1 (a0), 1 (a1), 0", d, x, s)
	}
	if cause := c.Cause(); cause != CauseSlowConsumer {
		t.Fatalf("cause %+v, want slow consumer", cause)
	}
}

// Keys make room for a frame each, but no more than SendQueue of them: a
// conflating queue holds at most twice SendQueue frames, also when every
// pong is of another exchange (a client of "*" and a publisher making up
// names), and one more closes the client as a slow consumer.
func TestConflatingQueueHoldsAtMostTwiceSendQueue(t *testing.T) {
	obs := &counter{}
	cfg := testConfig(obs)
	cfg.SendQueue, cfg.Conflate = 4, true
	c, sock, br, readDone := stuckConn(t, cfg)
	for _, label := range strings.Fields("b1 c1 d1 e1 f1 g1 h1 i1") {
		if r := c.Deliver(labelled(label, 0)); r != Queued {
			t.Fatalf("%s: Deliver = %d, want Queued", label, r)
		}
	}
	if got, want := queued(c), "b1 c1 d1 e1 f1 g1 h1 i1"; got != want {
		t.Fatalf("the queue holds %q, want %q", got, want)
	}
	if r := c.Deliver(labelled("j1", 0)); r != SlowConsumer {
		t.Fatalf("j1: Deliver = %d, want SlowConsumer", r)
	}
	labels, code, _ := readLabels(t, br)
	if got := strings.Join(labels, " "); got != "a0" || code != wsframe.ClosePolicyViolation {
		t.Fatalf("the client got %q and close %d, want a0 and 1008", got, code)
	}
	endConn(t, sock, br, readDone)
	if d, x, s := obs.delivered.Load(), obs.dropped.Load(), obs.conflated.Load(); d != 1 || x != 9 || s != 0 {
		t.Fatalf("delivered %d, dropped %d, conflated %d; want 1, 9, 0", d, x, s)
	}
}

// Pongs of five exchanges and a reply every 40 frames, of random sizes,
// delivered to a conflating Conn faster than the client reads in random
// bites, the writer's batches and short writes in flight: the client is
// never closed, what it gets is what was delivered minus superseded pongs, in
// the order delivered, with every reply and the last pong of each
// exchange, and every pong is counted once, as delivered or conflated.
func TestConflateUnderLoad(t *testing.T) { eachSeed(t, conflateRound) }

func conflateRound(t *testing.T, seed uint64) {
	const frames, unread = 1500, 300 // the client starts reading after 300
	obs := &counter{}
	cfg := testConfig(obs)
	cfg.SendQueue, cfg.Conflate = 64, true
	sock := newMemSock(seed)
	c := accept(t, sock, cfg)
	c.FinishHandshake()
	readDone := startReader(c)

	rng := mrand.New(mrand.NewPCG(seed, 10))
	sent := make([]string, frames)
	counts, replies := map[byte]int{}, 0
	for i := range sent {
		if i%40 == 39 { // fewer than SendQueue in all: replies alone never fill it

			sent[i] = fmt.Sprintf("r%d", i)
			replies++
			continue
		}
		x := "abcde"[rng.IntN(5)]
		counts[x]++
		sent[i] = fmt.Sprintf("%c%d", x, counts[x])
	}
	reading := make(chan struct{})
	delivered := make(chan error, 1)
	go func() {
		rng := mrand.New(mrand.NewPCG(seed, 11))
		for i, label := range sent {
			if i == unread {
				close(reading)
			}
			if r := c.Deliver(labelled(label, rng.IntN(900))); r != Sent && r != Queued {
				delivered <- fmt.Errorf("%s: Deliver = %d", label, r)
				return
			}
		}
		c.Close(flushClose)
		delivered <- nil
	}()
	<-reading
	br := bufio.NewReader(&drainReader{s: sock, rng: mrand.New(mrand.NewPCG(seed, 12))})
	labels, code, _ := readLabels(t, br)
	if err := <-delivered; err != nil {
		t.Fatal(err)
	}
	if code != wsframe.CloseNormal {
		t.Fatalf("closed with %d after %d frames", code, len(labels))
	}
	endConn(t, sock, br, readDone)

	// What the client got is a subsequence of what was sent, missing only
	// pongs that a later pong of their exchange superseded.
	last := map[byte]string{}
	for _, label := range sent {
		last[label[0]] = label
	}
	j := 0
	for i, label := range sent {
		switch {
		case j < len(labels) && labels[j] == label:
			j++
		case label[0] == 'r':
			t.Fatalf("reply %s (frame %d) is missing or out of place", label, i)
		case last[label[0]] == label:
			t.Fatalf("the last pong of %c, %s, is missing or out of place", label[0], label)
		}
	}
	if j != len(labels) {
		t.Fatalf("frame %q was not sent, or not in that place", labels[j])
	}
	pongs := int64(frames - replies)
	d, x, s := obs.delivered.Load(), obs.dropped.Load(), obs.conflated.Load()
	if x != 0 || d+s != pongs || d != int64(len(labels)-replies) {
		t.Fatalf("delivered %d, dropped %d, conflated %d of %d pongs; the client got %d frames", d, x, s, pongs, len(labels))
	}
	if s == 0 {
		t.Fatal("nothing was conflated: the test did not fill the queue")
	}
}
