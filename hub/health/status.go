package health

import (
	"math"
	"strconv"
	"time"

	"github.com/pongcast/pongcast/protocol"
)

// Status is an exchange's health as the server derives it from its
// pongs. The zero value, "", is an exchange with no status yet: one known
// only from a merged snapshot.
type Status string

// The statuses of the contract.
const (
	// StatusUp: the last pong was connected (or carried no status), and
	// its latency, if any, at most the alert threshold.
	StatusUp Status = "up"
	// StatusSlow: the last pong's latency was above the alert threshold.
	StatusSlow Status = "slow"
	// StatusDown: the last pong said disconnected or error, whatever its
	// latency.
	StatusDown Status = "down"
	// StatusStale: no pong for StaleAfter.
	StatusStale Status = "stale"
)

// available reports whether time spent in s counts towards availability.
func (s Status) available() bool { return s == StatusUp || s == StatusSlow }

// Sample is what Observe needs of one valid pong: the fields
// protocol.ParsePong has already checked.
type Sample struct {
	// Status is the pong's status field (protocol.StatusConnected,
	// StatusDisconnected or StatusError), or "" when it has none; any
	// other value counts as "". A pong without a status is judged by its
	// latency alone: a connector that publishes is alive.
	Status string
	// Latency is the pong's latency in ms, finite and >= 0; read only
	// when HasLatency.
	Latency    float64
	HasLatency bool
}

// latency returns the sample's latency as the statistics keep it, and
// false when there is none to keep. NaN (which ParsePong never passes)
// counts as none; a value too large to sum safely is capped, so no
// statistic can become +Inf, which JSON cannot carry.
func (s Sample) latency() (float64, bool) {
	if !s.HasLatency || math.IsNaN(s.Latency) {
		return 0, false
	}
	return min(max(s.Latency, 0), maxLatencyMs), true
}

// maxLatencyMs caps a recorded latency: about 31 years, so sums of
// billions of samples stay finite while every real value stays exact.
const maxLatencyMs = 1e12

// Transition is a change of an exchange's status, as the
// exchange:status message carries it.
type Transition struct {
	Exchange string
	Status   Status
	// Previous is the status before; "" for an exchange's first status,
	// which the message then leaves out.
	Previous Status
	// Since is when Status began: the receive time of the pong that
	// caused it, or, for StatusStale, the last pong plus StaleAfter (not
	// when the timer happened to fire).
	Since time.Time
	// Reason is for humans: "pong received", "latency 1450 ms over
	// 1000 ms", "latency 45 ms within 1000 ms", "status disconnected",
	// "no pong for 2m0s".
	Reason string
}

// judge returns the status one pong implies. Down wins over slow: the
// latency a disconnected connector reports says nothing about the
// exchange.
func (t *Tracker) judge(s Sample) Status {
	switch s.Status {
	case protocol.StatusDisconnected, protocol.StatusError:
		return StatusDown
	}
	if lat, ok := s.latency(); ok && lat > t.alertMs {
		return StatusSlow
	}
	return StatusUp
}

// reason says why a pong moved an exchange from prev to next.
func (t *Tracker) reason(prev, next Status, s Sample) string {
	switch {
	case next == StatusDown:
		return "status " + s.Status
	case next == StatusSlow:
		return "latency " + formatMs(s.Latency) + " ms over " + formatMs(t.alertMs) + " ms"
	case prev == StatusSlow && s.HasLatency:
		return "latency " + formatMs(s.Latency) + " ms within " + formatMs(t.alertMs) + " ms"
	}
	return "pong received"
}

// formatMs prints a latency for a reason: to 0.1 ms, no trailing zeros.
func formatMs(ms float64) string {
	return strconv.FormatFloat(math.Round(ms*10)/10, 'f', -1, 64)
}
