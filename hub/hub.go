package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
)

// Errors from subscribe; the session maps them to wire error codes.
var (
	ErrForbidden      = errors.New("hub: exchange not allowed by token")
	ErrTooManySubs    = errors.New("hub: subscription limit reached")
	ErrHubClosed      = errors.New("hub: shutting down")
	errNothingAllowed = fmt.Errorf("%w: the token allows no exchanges", ErrForbidden)
	errNotRegistered  = errors.New("hub: client not registered")
)

// Hub is the routing table: which sessions receive which exchange's
// pongs. It owns every session's subscription state. Routing a pong costs
// in proportion to its subscribers: a map lookup by exchange, plus the
// wildcard subscribers, whose tokens allow every exchange (a wildcard
// under a token with a finite list is stored as that list, so it never
// needs filtering at fan-out).
type Hub struct {
	metrics          *Metrics
	maxSubscriptions int
	// health is told of every pong, and the pong delivered, under one
	// read lock; it is read for snapshots under the write lock of a
	// subscribe, so that each pong is either wholly before a subscribe or
	// unsubscribe (in its snapshot, the client not among its receivers,
	// or delivered before the unsubscribe took effect) or wholly after
	// (delivered live, queued behind the snapshot): never both, never an
	// older snapshot after it.
	health *health.Tracker
	frames *healthFrames

	mu sync.RWMutex
	// byExchange holds, per exchange, its subscribers by name, each with
	// whether it also holds the wildcard (and so is served from there):
	// the flag sits in the map, so routing reads no other memory to skip
	// it.
	byExchange map[string]map[*session]bool
	wildcard   map[*session]struct{}
	members    map[*session]*member
	closed     bool
}

// member is one session's subscriptions. Guarded by the Hub's lock.
type member struct {
	subs     []string // named exchanges, sorted
	wildcard bool     // holds "*" under a token that allows every exchange
}

func newHub(metrics *Metrics, maxSubscriptions int, tracker *health.Tracker) *Hub {
	return &Hub{
		metrics:          metrics,
		maxSubscriptions: maxSubscriptions,
		health:           tracker,
		frames:           newHealthFrames(),
		byExchange:       make(map[string]map[*session]bool),
		wildcard:         make(map[*session]struct{}),
		members:          make(map[*session]*member),
	}
}

// register adds a connected session; it fails once the hub is closing.
func (h *Hub) register(s *session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHubClosed
	}
	h.members[s] = &member{}
	h.metrics.ClientsConnected.Inc()
	return nil
}

// unregister removes s and all its subscriptions. Safe to call twice.
func (h *Hub) unregister(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.members[s]
	if !ok {
		return
	}
	delete(h.members, s)
	h.metrics.ClientsConnected.Dec()
	h.dropAllLocked(s, m)
}

// expandSubscription checks names (normalised, possibly protocol.Wildcard)
// against claims, all or nothing. It returns the named exchanges to add,
// sorted and each once ("*" under a finite token may repeat names), and
// whether the wildcard itself is to be held.
func expandSubscription(claims auth.Claims, names []string) (add []string, wildcard bool, err error) {
	add = make([]string, 0, len(names))
	for _, name := range names {
		switch {
		case name == protocol.Wildcard && claims.AllowsAll():
			wildcard = true
		case name == protocol.Wildcard:
			// "Every exchange the token allows" is a finite list here.
			if len(claims.Exchanges) == 0 {
				return nil, false, errNothingAllowed
			}
			add = append(add, claims.Exchanges...)
		case !claims.Allows(name):
			return nil, false, fmt.Errorf("%w: %s", ErrForbidden, forbiddenList(claims, names))
		default:
			add = append(add, name)
		}
	}
	slices.Sort(add)
	return slices.Compact(add), wildcard, nil
}

// checkSubscription says whether a client holding nothing yet could
// subscribe to names under claims: the same refusals as subscribe, before
// there is a session.
func (h *Hub) checkSubscription(claims auth.Claims, names []string) error {
	add, _, err := expandSubscription(claims, names)
	if err != nil {
		return err
	}
	if len(add) > h.maxSubscriptions {
		return h.tooMany(0, len(add))
	}
	return nil
}

// tooMany is the refusal of a subscribe that would take a client holding
// have names past the limit.
func (h *Hub) tooMany(have, more int) error {
	return fmt.Errorf("%w: at most %d exchanges by name (have %d, asked for %d more); \"*\" counts as none",
		ErrTooManySubs, h.maxSubscriptions, have, more)
}

// subscribe adds names (normalised, possibly protocol.Wildcard) to s's set,
// all or nothing. On success it queues, before any later pong can reach
// the client, the subscribed reply with the whole set (and its unseen
// names), then for each exchange added that has one, its snapshot and its
// status. The list is checked, de-duplicated and sorted before the lock is
// taken; under it, each name costs a binary search of the sorted set.
func (h *Hub) subscribe(s *session, names []string, id json.RawMessage) error {
	add, wildcard, err := expandSubscription(s.claims, names)
	if err != nil {
		return err
	}
	over := 0
	defer func() { // after the unlock: no logging under the hub's lock
		if over > 0 {
			s.logOverCap(over)
		}
	}()
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.members[s]
	if !ok {
		return errNotRegistered
	}
	fresh := make([]string, 0, len(add))
	for _, name := range add {
		if _, held := slices.BinarySearch(m.subs, name); !held {
			fresh = append(fresh, name)
		}
	}
	if len(m.subs)+len(fresh) > h.maxSubscriptions {
		return h.tooMany(len(m.subs), len(fresh))
	}
	for _, name := range fresh {
		set := h.byExchange[name]
		if set == nil {
			set = make(map[*session]bool)
			h.byExchange[name] = set
		}
		set[s] = m.wildcard
	}
	m.subs = append(m.subs, fresh...)
	slices.Sort(m.subs)
	h.metrics.Subscriptions.Add(float64(len(fresh)))
	var everything []string // what the wildcard adds: every exchange known, not yet held by name
	if wildcard && !m.wildcard {
		m.wildcard = true
		h.wildcard[s] = struct{}{}
		h.metrics.Subscriptions.Inc()
		for _, name := range m.subs {
			h.byExchange[name][s] = true
		}
		for _, name := range h.health.Held(nil) {
			if _, held := slices.BinarySearch(m.subs, name); !held {
				everything = append(everything, name)
			}
		}
	}
	var owed []*wsconn.Frame
	for _, list := range [][]string{fresh, everything} {
		for _, name := range list {
			owed = h.frames.appendLast(owed, h.health, name)
		}
	}
	s.conn.Burst(1 + len(owed)) // the reply and what is owed: never a slow consumer for them
	over = s.replyLocked(protocol.EncodeSubscriptions(protocol.TypeSubscribed, m.set(), h.unseen(m.subs), id))
	for _, f := range owed {
		s.deliver(f)
	}
	return nil
}

// unseen lists the names no pong has been seen for, here or (through the
// shared snapshots) anywhere.
func (h *Hub) unseen(names []string) []string {
	var out []string
	for _, name := range names {
		if !h.health.Seen(name) {
			out = append(out, name)
		}
	}
	return out
}

// unsubscribe removes names from s's set and returns the whole set now.
// Names s is not subscribed to are ignored; Wildcard removes everything.
func (h *Hub) unsubscribe(s *session, names []string) []string {
	names = slices.Sorted(slices.Values(names)) // a copy: searched under the lock
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.members[s]
	if !ok {
		return nil
	}
	if slices.Contains(names, protocol.Wildcard) {
		h.dropAllLocked(s, m)
		return m.set()
	}
	h.dropLocked(s, m, names)
	return m.set()
}

// dropLocked removes s from the routing table for names (sorted), and
// names from m.
func (h *Hub) dropLocked(s *session, m *member, names []string) {
	removed := 0
	for _, name := range names {
		if h.removeRouteLocked(s, name) {
			removed++
		}
	}
	if removed > 0 {
		m.subs = slices.DeleteFunc(m.subs, func(n string) bool {
			_, found := slices.BinarySearch(names, n)
			return found
		})
	}
	h.metrics.Subscriptions.Sub(float64(removed))
}

// dropAllLocked removes every subscription of s, the wildcard included.
func (h *Hub) dropAllLocked(s *session, m *member) {
	removed := 0
	for _, name := range m.subs {
		if h.removeRouteLocked(s, name) {
			removed++
		}
	}
	m.subs = m.subs[:0]
	if m.wildcard {
		m.wildcard = false
		delete(h.wildcard, s)
		removed++
	}
	h.metrics.Subscriptions.Sub(float64(removed))
}

func (h *Hub) removeRouteLocked(s *session, name string) bool {
	set := h.byExchange[name]
	if _, ok := set[s]; !ok {
		return false
	}
	delete(set, s)
	if len(set) == 0 {
		delete(h.byExchange, name)
	}
	return true
}

// publish tells the health tracker of one pong, delivers its frame f to
// every subscriber of its exchange, then, if the pong changed the
// exchange's status, the exchange:status message. It returns how many
// took the pong, and what the tracker made of it.
//
// All of it happens under one read lock (see Hub.health): were the
// subscribers served after it, a client could unsubscribe and subscribe
// again in between and get the pong twice, as the snapshot and then
// live. Pongs are not held back by each other (readers share the lock);
// a subscribe waits for the delivery of the pongs in flight. Delivery
// never blocks (see wsconn.Conn.Deliver) and nothing is logged under
// the lock (session.deliver).
func (h *Hub) publish(p protocol.Pong, f *wsconn.Frame, env []byte) (int, health.Observation) {
	snap := sessionsPool.Get().(*[]*session)
	h.mu.RLock()
	obs := h.health.Observe(p.Exchange, health.Sample{Status: p.Status, Latency: p.Latency, HasLatency: p.HasLatency}, f.Received, env)
	targets := h.targetsLocked(p.Exchange, (*snap)[:0])
	n := deliverAll(targets, f)
	if obs.Changed {
		deliverAll(targets, h.frames.status(obs.Transition))
	}
	h.mu.RUnlock()
	if !obs.Tracked {
		h.metrics.ExchangesUntracked.Inc()
	}
	clear(targets)
	*snap = targets[:0]
	sessionsPool.Put(snap)
	return n, obs
}

// expire finds the exchanges gone stale by now and tells their
// subscribers, then forgets those past the horizon and returns their
// names. It holds the write lock throughout, as a subscribe does: a pong
// of the same exchange (under the read lock) comes wholly before or
// wholly after, so no client is told "stale" after the pong that made
// the exchange up again, and a subscribe sees an exchange either with
// its snapshot or unseen. Delivery never blocks.
func (h *Hub) expire(now time.Time) []string {
	snap := sessionsPool.Get().(*[]*session)
	h.mu.Lock()
	for _, tr := range h.health.Expire(now) {
		targets := h.targetsLocked(tr.Exchange, (*snap)[:0])
		deliverAll(targets, h.frames.status(tr))
		clear(targets)
		*snap = targets[:0]
	}
	// The cached frames go under the lock too: an exchange of the same
	// name tracked anew starts its snapshots at the same Seq.
	forgotten := h.health.Forget(now, nil)
	h.frames.forget(forgotten)
	h.mu.Unlock()
	sessionsPool.Put(snap)
	h.metrics.ExchangesForgotten.Add(float64(len(forgotten)))
	return forgotten
}

// targetsLocked appends the receivers of exchange's messages to out: its
// subscribers by name, and the wildcard holders, each once.
func (h *Hub) targetsLocked(exchange string, out []*session) []*session {
	for s, viaWildcard := range h.byExchange[exchange] {
		if !viaWildcard { // wildcard holders are served below, once
			out = append(out, s)
		}
	}
	for s := range h.wildcard {
		out = append(out, s)
	}
	return out
}

// sessionsPool recycles lists of sessions, so routing a pong allocates
// nothing per subscriber.
var sessionsPool = sync.Pool{New: func() any { s := make([]*session, 0, 64); return &s }}

// sessions appends every registered session to out.
func (h *Hub) sessions(out []*session) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.members {
		out = append(out, s)
	}
	return out
}

// closeAll marks the hub closed, so no session registers after, and
// returns the sessions connected now.
func (h *Hub) closeAll() []*session {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	return h.sessions(nil)
}

// count returns the number of registered sessions.
func (h *Hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.members)
}

// set is m's whole subscription set for a reply: "*" first when m holds
// the wildcard, then its named exchanges in order.
func (m *member) set() []string {
	out := make([]string, 0, len(m.subs)+1)
	if m.wildcard {
		out = append(out, protocol.Wildcard)
	}
	return append(out, m.subs...)
}

// forbiddenList names the exchanges claims does not allow, a few of them:
// the error must stay well under the message cap however many were asked.
func forbiddenList(claims auth.Claims, names []string) string {
	const show = 5
	var bad []string
	more := 0
	for _, n := range names {
		if n == protocol.Wildcard || claims.Allows(n) {
			continue
		}
		if len(bad) < show {
			bad = append(bad, n)
		} else {
			more++
		}
	}
	list := strings.Join(bad, ", ")
	if more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	return list
}
