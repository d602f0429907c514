package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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
	r := &slowReader{r: c.Reader(), rng: rand.New(rand.NewPCG(seed, 1))}
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

	_ = c.Conn.SetReadDeadline(time.Now().Add(2 * hubtest.ReadTimeout))
	next, pingReplies := 0, 0
	for next < pongs {
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
