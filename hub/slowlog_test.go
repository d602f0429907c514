package hub

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// lockedLogCheck is a log handler that, for one message, records any
// method of the Hub on the stack of the goroutine writing it: those are
// the ones that hold the hub's lock while they deliver.
type lockedLogCheck struct {
	message string
	mu      sync.Mutex
	seen    chan struct{} // closed at the first record of message
	inHub   []string
}

func (h *lockedLogCheck) Enabled(context.Context, slog.Level) bool { return true }
func (h *lockedLogCheck) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lockedLogCheck) WithGroup(string) slog.Handler            { return h }

func (h *lockedLogCheck) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.message {
		return nil
	}
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(0, pcs)])
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, "hub.(*Hub).") {
			h.inHub = append(h.inHub, f.Function)
		}
		if !more {
			break
		}
	}
	select {
	case <-h.seen:
	default:
		close(h.seen)
	}
	return nil
}

// The slow-consumer line is not written while the hub's lock is held
// (by the fan-out that found the queue full): a log handler that is slow
// to write must not hold up routing and every subscribe.
func TestSlowConsumerLoggedOutsideTheHubLock(t *testing.T) {
	check := &lockedLogCheck{message: "slow consumer closed", seen: make(chan struct{})}
	s := newTestServer(t, Options{SendQueue: 4, WriteTimeout: time.Minute, Logger: slog.New(check)})
	c, err := hubtest.TryRawDialWith(t, &net.Dialer{Control: smallReceiveBuffer}, s.wsURL("exchanges=gateio"), hubtest.Token(t, "slow", time.Hour, "gateio"))
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("s", 8000)
	for i := 0; testCounter(s.metrics.SlowConsumerCloses) == 0; i++ {
		if i == 50_000 {
			t.Fatal("the queue never overflowed")
		}
		if err := s.Publish(fmt.Appendf(nil, `{"exchange":"gateio","latency":%d,"pad":%q}`, i, pad)); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Conn.Close() // the close frame cannot get through: end the session now
	select {
	case <-check.seen:
	case <-time.After(hubtest.ReadTimeout):
		t.Fatal("no slow consumer line logged")
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if len(check.inHub) > 0 {
		t.Fatalf("the slow consumer line was logged from %v, under the hub's lock", check.inHub)
	}
}
