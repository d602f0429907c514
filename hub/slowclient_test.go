package hub

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// A client that stops reading while pongs of three exchanges pour in,
// behind a small receive buffer, until its queue overflows: by default it
// is closed as a slow consumer, after the pongs that were out; with
// SlowClientConflate it stays, and once it reads again it gets, per
// exchange, pongs in the order published, the newest last, and every
// pong is either delivered or counted as conflated, none dropped.
func TestSlowClientPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy SlowClientPolicy
	}{
		{"close by default", ""},
		{"conflate", SlowClientConflate},
	} {
		t.Run(tc.name, func(t *testing.T) { slowClientRound(t, tc.policy) })
	}
}

func slowClientRound(t *testing.T, policy SlowClientPolicy) {
	const queue = 16
	exchanges := []string{"gateio", "binance", "okx"}
	// The writer waits on the stuck socket for as long as the test fills
	// the queue: the write timeout must not end it first.
	s := newTestServer(t, Options{SendQueue: queue, SlowClient: policy, WriteTimeout: time.Minute})
	c, err := hubtest.TryRawDialWith(t, &net.Dialer{Control: smallReceiveBuffer},
		s.wsURL("exchanges="+strings.Join(exchanges, ",")), hubtest.Token(t, "slow", time.Hour, exchanges...))
	if err != nil {
		t.Fatal(err)
	}

	// Publish round-robin until the queue has overflowed: a close, or
	// pongs conflated. Then, when conflating, some more, so that the
	// queue is conflated many times over.
	pad := strings.Repeat("s", 8000)
	published := 0
	publish := func() {
		t.Helper()
		ex := exchanges[published%len(exchanges)]
		if err := s.Publish(fmt.Appendf(nil, `{"exchange":%q,"latency":%d,"pad":%q}`, ex, published, pad)); err != nil {
			t.Fatal(err)
		}
		published++
	}
	for testCounter(s.metrics.SlowConsumerCloses)+testCounter(s.metrics.Conflated) == 0 {
		if published == 50_000 { // 400 MB: far more than any socket holds
			t.Fatalf("%d pongs published and the queue never overflowed", published)
		}
		publish()
	}
	if closed := testCounter(s.metrics.SlowConsumerCloses) > 0; closed != (policy != SlowClientConflate) {
		t.Fatalf("policy %q: slow consumer closed: %v, pongs conflated: %v", policy, closed, testCounter(s.metrics.Conflated))
	}
	if policy == SlowClientConflate {
		for range 10 * queue {
			publish()
		}
	}
	newest := map[string]int{} // the last pong published of each exchange
	for i := published - len(exchanges); i < published; i++ {
		newest[exchanges[i%len(exchanges)]] = i
	}

	// Now read: per exchange, pongs in order; the newest of each, unless
	// closed first.
	r := c.Reader()
	last := map[string]int{}
	pending := len(exchanges)
	code := -1
	for code == -1 && (pending > 0 || policy != SlowClientConflate) {
		_ = c.Conn.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
		f, err := hubtest.ReadServerFrame(r)
		if err != nil {
			t.Fatalf("after %v: %v", last, err)
		}
		switch f.Opcode {
		case wsframe.OpClose:
			code, _, _ = wsframe.ParseClosePayload(f.Payload)
			continue
		case wsframe.OpText:
		default:
			continue
		}
		var m struct {
			Type     string `json:"type"`
			Exchange string `json:"exchange"`
			Data     struct {
				Latency int `json:"latency"`
			} `json:"data"`
		}
		if err := json.Unmarshal(f.Payload, &m); err != nil {
			t.Fatalf("frame %q: %v", hubtest.Truncate(f.Payload), err)
		}
		if m.Type != "exchange:pong" {
			continue // the subscribed reply
		}
		n, seen := last[m.Exchange]
		if seen && m.Data.Latency <= n {
			t.Fatalf("%s: pong %d after pong %d", m.Exchange, m.Data.Latency, n)
		}
		last[m.Exchange] = m.Data.Latency
		if m.Data.Latency == newest[m.Exchange] {
			pending--
		}
	}

	if policy != SlowClientConflate {
		if code != wsframe.ClosePolicyViolation {
			t.Fatalf("close code %d after %v, want 1008 slow consumer", code, last)
		}
		c.WriteFrame(true, wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.ClosePolicyViolation, ""))
		waitFor(t, "the close to be counted", func() bool {
			return testCounter(s.metrics.ClientCloses.WithLabelValues("slow_consumer")) == 1
		})
		return
	}
	if code != -1 {
		t.Fatalf("closed with %d after %v", code, last)
	}
	// Still served: a request is answered.
	c.WriteFrame(true, wsframe.OpText, []byte(`{"type":"ping","id":"alive"}`))
	for {
		f, err := hubtest.ReadServerFrame(r)
		if err != nil {
			t.Fatalf("no answer to the ping: %v", err)
		}
		if f.Opcode == wsframe.OpText && strings.Contains(string(f.Payload), `"type":"pong"`) {
			break
		}
	}
	waitFor(t, "every pong to be delivered or conflated", func() bool {
		return testCounter(s.metrics.Delivered)+testCounter(s.metrics.Conflated) == float64(published)
	})
	t.Logf("%d pongs published, %v delivered, %v conflated", published, testCounter(s.metrics.Delivered), testCounter(s.metrics.Conflated))
	if d, x := testCounter(s.metrics.Dropped), testCounter(s.metrics.SlowConsumerCloses); d != 0 || x != 0 {
		t.Fatalf("%v pongs dropped, %v slow consumers closed", d, x)
	}
}

func TestUnknownSlowClientPolicyRefused(t *testing.T) {
	_, err := NewServer(Options{Verifier: hubtest.Verifier(t), SlowClient: "drop"})
	if err == nil || !strings.Contains(err.Error(), `Options.SlowClient is "drop", want "close" or "conflate"`) {
		t.Fatalf("NewServer: %v", err)
	}
}
