package hub

import (
	"sync"
	"testing"
)

// A client that unsubscribes and subscribes again while pongs are routed
// never gets a pong twice (as the snapshot, then live) nor an older one
// after a newer: within each subscription, from its subscribed reply on,
// the pongs' numbers rise. Nor does a pong come between an unsubscribed
// reply and the next subscribed one.
func TestResubscribeNeverGetsAPongTwice(t *testing.T) {
	const rounds, pongs = 900, 9000
	s := newTestServer(t, Options{SendQueue: 4 * pongs, ClientRate: 1e6, ClientBurst: 4 * rounds})
	// Other subscribers make each pong's fan-out long, and the race it
	// could lose, if the hub let it, likely.
	for range 40 {
		s.dial(t, "exchanges=gateio", "*").ReadType("subscribed")
	}
	c := s.dial(t, "exchanges=gateio", "*")
	c.ReadType("subscribed")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= pongs; i++ {
			s.publish(t, "gateio", i)
		}
	}()
	for range rounds {
		c.Send(map[string]any{"type": "unsubscribe", "exchanges": []string{"gateio"}})
		c.Send(map[string]any{"type": "subscribe", "exchanges": []string{"gateio"}})
	}
	c.Send(map[string]any{"type": "ping", "id": "end"})
	subscribed, last, replies := true, 0, 0
	for replies < 2*rounds {
		m := c.Read()
		switch m.Type {
		case "subscribed":
			subscribed, last = true, 0
			replies++
		case "unsubscribed":
			subscribed = false
			replies++
		case "exchange:pong":
			n := latencyOf(t, m)
			if !subscribed {
				t.Fatalf("after %d replies: pong %d (snapshot %v) between unsubscribed and subscribed", replies, n, m.Snapshot)
			}
			if n <= last {
				t.Fatalf("after %d replies: pong %d (snapshot %v) after pong %d in the same subscription", replies, n, m.Snapshot, last)
			}
			last = n
		}
	}
	wg.Wait()
}
