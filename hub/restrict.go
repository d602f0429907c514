package hub

import "github.com/pongcast/pongcast/auth"

// restrict drops what claims (a refreshed token) no longer allows from
// s's set: named exchanges it does not allow, and the wildcard unless it
// allows every exchange (a "*" under a finite token would be a list of
// names, which the client may subscribe to again). It returns the whole
// set now and whether anything was dropped.
func (h *Hub) restrict(s *session, claims auth.Claims) ([]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.members[s]
	if !ok {
		return nil, false
	}
	var drop []string // sorted, as m.subs is
	for _, name := range m.subs {
		if !claims.Allows(name) {
			drop = append(drop, name)
		}
	}
	h.dropLocked(s, m, drop)
	dropped := len(drop) > 0
	if m.wildcard && !claims.AllowsAll() {
		m.wildcard = false
		delete(h.wildcard, s)
		h.metrics.Subscriptions.Dec()
		for _, name := range m.subs {
			h.byExchange[name][s] = false // served by name again
		}
		dropped = true
	}
	return m.set(), dropped
}
