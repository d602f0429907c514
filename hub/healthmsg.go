package hub

import (
	"sync"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// statusFrame frames an exchange:status message for a transition, once
// for all its receivers.
// Under --slow-client conflate only the newest status of an exchange
// waits for a slow client, so its previous may be one the client never
// saw: it is the server's previous status.
func statusFrame(tr health.Transition) *wsconn.Frame {
	f := wsconn.TextFrame(protocol.EncodeStatus(tr.Exchange, string(tr.Status), string(tr.Previous), tr.Since.UnixMilli(), tr.Reason))
	f.Conflate = wsconn.ConflateKey{Exchange: tr.Exchange, Kind: wsconn.ConflateStatus}
	return f
}

// healthFrames caches, per exchange, the framed snapshot of its newest
// pong, built on the first subscribe after that pong and shared by every
// subscribe until the next: 10,000 clients connecting with ?exchanges=
// cost one snapshot frame, not 10,000.
type healthFrames struct {
	mu        sync.Mutex
	snapshots map[string]cachedSnapshot
	statuses  map[string]cachedStatus // likewise the status message, per transition
}

type cachedStatus struct {
	tr    health.Transition
	frame *wsconn.Frame
}

type cachedSnapshot struct {
	seq   uint64
	frame *wsconn.Frame
}

func newHealthFrames() *healthFrames {
	return &healthFrames{snapshots: make(map[string]cachedSnapshot), statuses: make(map[string]cachedStatus)}
}

// appendLast appends to out what is known of exchange now: its snapshot
// and then its status, each if there is one.
func (f *healthFrames) appendLast(out []*wsconn.Frame, tracker *health.Tracker, exchange string) []*wsconn.Frame {
	if snap, ok := tracker.Snapshot(exchange); ok {
		out = append(out, f.snapshot(exchange, snap))
	}
	if tr, ok := tracker.Status(exchange); ok && tr.Status != "" {
		out = append(out, f.status(tr))
	}
	return out
}

// forget drops the frames of exchanges the tracker has forgotten: the
// cache holds no more names than the tracker.
func (f *healthFrames) forget(names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		delete(f.snapshots, name)
		delete(f.statuses, name)
	}
}

// status returns the framed exchange:status message of tr, built once per
// transition and shared by every receiver.
func (f *healthFrames) status(tr health.Transition) *wsconn.Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.statuses[tr.Exchange]; ok && c.tr == tr {
		return c.frame
	}
	frame := statusFrame(tr)
	f.statuses[tr.Exchange] = cachedStatus{tr: tr, frame: frame}
	return frame
}

// snapshot returns the framed snapshot, from the cache when it is current.
func (f *healthFrames) snapshot(exchange string, snap health.Snapshot) *wsconn.Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.snapshots[exchange]; ok && c.seq == snap.Seq {
		return c.frame
	}
	n := protocol.SnapshotLen(len(snap.Env))
	wire := wsconn.AppendTextHeader(make([]byte, 0, wsframe.HeaderLen(n)+n), n)
	wire = protocol.AppendSnapshot(wire, snap.Env)
	// No receive time: a snapshot is not a delivery of a live pong, and
	// its age is no delivery latency.
	frame := &wsconn.Frame{Wire: wire, Conflate: wsconn.ConflateKey{Exchange: exchange, Kind: wsconn.ConflatePong}}
	f.snapshots[exchange] = cachedSnapshot{seq: snap.Seq, frame: frame}
	return frame
}
