package health

import (
	"errors"
	"fmt"
	"time"
)

// Window is a span of the rolling statistics.
type Window uint8

// The windows of the contract.
const (
	Window1m Window = iota
	Window5m
	Window1h
	Window24h
	numWindows
)

// ErrUnknownWindow is wrapped by ParseWindow's error.
var ErrUnknownWindow = errors.New("health: unknown window")

// windowSpec is how a window is kept: n buckets of width ms. The window
// is the newest n buckets, the current one partly filled, so it covers
// between (n-1)·width and n·width of the past (55-60 s for 1m): never
// more than it says. Finer buckets would blur less and cost memory in
// every exchange; each bucket is one histogram (see hist).
type windowSpec struct {
	name    string
	widthMs int64
	n       int
	off     int // index of the window's first bucket in exchange.buckets
}

var windows = [numWindows]windowSpec{
	Window1m:  {"1m", 5_000, 12, 0},
	Window5m:  {"5m", 30_000, 10, 12},
	Window1h:  {"1h", 300_000, 12, 22},
	Window24h: {"24h", 3_600_000, 24, 34},
}

// numBuckets is every window's buckets together.
const numBuckets = 12 + 10 + 12 + 24

// Windows lists every window, shortest first.
var Windows = []Window{Window1m, Window5m, Window1h, Window24h}

// ParseWindow parses a window as clients name it: "1m", "5m", "1h",
// "24h". Any other text is an error that lists them and wraps
// ErrUnknownWindow.
func ParseWindow(s string) (Window, error) {
	for w, spec := range windows {
		if s == spec.name {
			return Window(w), nil
		}
	}
	return 0, fmt.Errorf("%w %.8q: use 1m, 5m, 1h or 24h", ErrUnknownWindow, s) // the client's text, cut short
}

// String returns the window's name, as ParseWindow takes it.
func (w Window) String() string {
	if w >= numWindows {
		return fmt.Sprintf("Window(%d)", uint8(w))
	}
	return windows[w].name
}

// Duration is the window's nominal length.
func (w Window) Duration() time.Duration {
	if w >= numWindows {
		return 0
	}
	spec := windows[w]
	return time.Duration(spec.widthMs*int64(spec.n)) * time.Millisecond
}
