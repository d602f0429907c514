package hub

import (
	"errors"
	"log/slog"
	"time"

	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// route takes one payload from the pong channel: it validates it, wraps
// it in the envelope and frames it once, and hands the frame to the hub,
// which tells the health tracker and gives the same bytes to every
// subscriber. It is the Feed's sink.
func (s *Server) route(payload []byte, received time.Time) error {
	s.metrics.PongsReceived.Inc()
	pong, err := protocol.ParsePong(payload, s.opts.MaxMessageBytes)
	if err != nil {
		var pe *protocol.PongError
		reason := "invalid"
		if errors.As(err, &pe) {
			reason = pe.Reason
		}
		s.metrics.PongsRejected.WithLabelValues(reason).Inc()
		s.rejectLog.log(s.log, slog.LevelWarn, "pong rejected", "reason", reason, "error", err, "bytes", len(payload))
		return err
	}
	ts := received.UnixMilli()
	n := protocol.EnvelopeLen(pong.Exchange, pong.Data, ts)
	wire := wsconn.AppendTextHeader(make([]byte, 0, wsframe.HeaderLen(n)+n), n)
	head := len(wire)
	wire = protocol.AppendEnvelope(wire, pong.Exchange, pong.Data, ts)
	env := wire[head:]
	f := &wsconn.Frame{Wire: wire, Received: received, Conflate: wsconn.ConflateKey{Exchange: pong.Exchange, Kind: wsconn.ConflatePong}}
	_, obs := s.hub.publish(pong, f, env)
	switch {
	case !obs.Tracked:
		s.untrackedLog.log(s.log, slog.LevelWarn, "exchange not tracked: --max-exchanges reached; its pongs are delivered, without snapshot, status or statistics",
			"exchange", pong.Exchange, "max_exchanges", s.opts.MaxExchanges)
	case s.snaps != nil:
		s.snaps.Save(pong.Exchange, env, received)
		if s.history != nil {
			s.history.Append(pong.Exchange, env, len(pong.Data), received)
		}
	}
	s.metrics.PongsRouted.Inc()
	return nil
}
