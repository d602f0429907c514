package hub

// byUse is a list of values in order of use, the least recently used
// first, each held in a node the caller keeps (in a map, say) to touch or
// remove it in constant time. It is the one structure behind the
// handshake limiter's table and the pending-connection gate. Not safe for
// concurrent use: its owner's lock guards it.
type byUse[V any] struct {
	root useNode[V] // sentinel: root.next is the oldest, root.prev the newest
}

// useNode is one value of a byUse list.
type useNode[V any] struct {
	prev, next *useNode[V]
	v          V
}

// init empties l; call it before first use.
func (l *byUse[V]) init() { l.root.prev, l.root.next = &l.root, &l.root }

// oldest is the least recently used node, or nil when l is empty.
func (l *byUse[V]) oldest() *useNode[V] {
	if l.root.next == &l.root {
		return nil
	}
	return l.root.next
}

// add puts n in l as the newest.
func (l *byUse[V]) add(n *useNode[V]) {
	n.prev, n.next = l.root.prev, &l.root
	l.root.prev.next = n
	l.root.prev = n
}

// touch makes n, already in l, the newest.
func (l *byUse[V]) touch(n *useNode[V]) {
	l.remove(n)
	l.add(n)
}

// remove takes n out of l.
func (l *byUse[V]) remove(n *useNode[V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}
