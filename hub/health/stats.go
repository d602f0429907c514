package health

import "math"

// ExchangeStats is one exchange's rolling statistics over one window, in
// the JSON shape of the contract.
type ExchangeStats struct {
	// Count is the pongs received in the window.
	Count uint64 `json:"count"`
	// Availability is the share of the window's known time spent up or
	// slow, 0..1. Time before the exchange's first status is not known
	// and left out, so a new exchange is not punished for the time
	// before it existed; down and stale time count against it.
	Availability float64 `json:"availability"`
	// Latency is nil, and null in JSON, when no pong of the window
	// carried a latency (or every one that did was down).
	Latency *LatencyStats `json:"latency"`
	// Status is the exchange's status now, Since when it began (Unix ms).
	Status Status `json:"status"`
	Since  int64  `json:"since"`
}

// LatencyStats summarises the latencies of a window in ms: Avg and Max
// exact, the percentiles within 1 ms below 20 ms and within 5% above.
type LatencyStats struct {
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// bucket is one period of one window: its pongs, the latencies of those
// that were not down, and how long the exchange was available in it.
type bucket struct {
	idx    int64 // the period held (Unix ms / width); noPeriod if none
	sum    float64
	lo, hi float64
	count  uint32 // pongs
	latN   uint32 // pongs with a latency kept
	upMs   uint32 // time up or slow; a period is at most an hour
	hist   hist
}

// noPeriod marks a bucket that holds no period yet.
const noPeriod = math.MinInt64

// series is an exchange's statistics: every window's buckets inline, a
// fixed size, so the bound on exchanges bounds their memory.
type series struct {
	// newest is, per window, the newest period a bucket holds: almost
	// every write falls in it, and finding it then takes no division.
	// An index, not a pointer, so the GC need not scan the buckets.
	newest  [numWindows]period
	buckets [numBuckets]bucket
}

type period struct {
	start int64 // Unix ms
	pos   int   // its bucket in buckets
}

func (s *series) init() {
	for i := range s.buckets {
		s.buckets[i].idx = noPeriod
	}
	for w := range s.newest {
		s.newest[w].start = 2 * msLimit // after any time: no write falls in it
	}
}

// at returns window w's bucket for period idx, emptied first if it held
// an older period; nil if it already holds a newer one (a write from
// before the ring turned, which the window no longer covers).
func (s *series) at(w Window, idx int64) *bucket {
	spec := &windows[w]
	pos := spec.off + int(mod(idx, int64(spec.n)))
	b := &s.buckets[pos]
	if b.idx != idx {
		if b.idx > idx {
			return nil
		}
		*b = bucket{idx: idx}
		// A bucket only ever moves to a newer period, so the newest
		// period's bucket is emptied only here, for a newer one still.
		if newest := &s.newest[w]; idx*spec.widthMs > newest.start || newest.start == 2*msLimit {
			*newest = period{start: idx * spec.widthMs, pos: pos}
		}
	}
	return b
}

// in returns window w's bucket for time tMs when it falls in the
// window's newest period: [start, start+width).
func (s *series) in(w Window, tMs int64) *bucket {
	if p := &s.newest[w]; tMs >= p.start && tMs-p.start < windows[w].widthMs {
		return &s.buckets[p.pos]
	}
	return nil
}

// record counts one pong received at tMs, with its latency when kept.
func (s *series) record(tMs int64, lat float64, hasLat bool) {
	bin := 0
	if hasLat {
		bin = binOf(lat)
	}
	for w := range numWindows {
		b := s.in(w, tMs)
		if b == nil {
			if b = s.at(w, floorDiv(tMs, windows[w].widthMs)); b == nil {
				continue
			}
		}
		if b.count < math.MaxUint32 {
			b.count++
		}
		if !hasLat || b.latN == math.MaxUint32 {
			continue
		}
		if b.latN == 0 {
			b.lo, b.hi = lat, lat
		}
		b.latN++
		b.sum += lat
		b.lo, b.hi = min(b.lo, lat), max(b.hi, lat)
		b.hist.add(bin)
	}
}

// addUp records that the exchange was available over [from, to), ms.
// Only the periods each window still covers are visited, so a long
// stretch costs at most every bucket once.
func (s *series) addUp(from, to int64) {
	if to <= from {
		return
	}
	for w := range numWindows {
		if b := s.in(w, from); b != nil && b == s.in(w, to-1) {
			b.upMs += uint32(to - from)
			continue
		}
		spec := &windows[w]
		last := floorDiv(to-1, spec.widthMs)
		first := max(floorDiv(from, spec.widthMs), last-int64(spec.n)+1)
		for idx := first; idx <= last; idx++ {
			start := idx * spec.widthMs
			d := min(to, start+spec.widthMs) - max(from, start)
			if b := s.at(w, idx); b != nil && d > 0 {
				b.upMs += uint32(d)
			}
		}
	}
}

// window sums window w's buckets as seen at nowMs into st, and returns
// the time available recorded in them and where the window starts.
func (s *series) window(w Window, nowMs int64, st *ExchangeStats) (upMs, startMs int64) {
	spec := &windows[w]
	cur := floorDiv(nowMs, spec.widthMs)
	first := cur - int64(spec.n) + 1
	var acc [numBins]uint64
	var weight, latN uint64
	var sum, lo, hi float64
	for i := range spec.n {
		b := &s.buckets[spec.off+i]
		if b.idx < first || b.idx > cur {
			continue
		}
		st.Count += uint64(b.count)
		upMs += int64(b.upMs)
		if b.latN == 0 {
			continue
		}
		if latN == 0 {
			lo, hi = b.lo, b.hi
		}
		latN += uint64(b.latN)
		sum += b.sum
		lo, hi = min(lo, b.lo), max(hi, b.hi)
		weight += b.hist.sumInto(&acc, binOf(b.lo), binOf(b.hi))
	}
	if latN > 0 {
		p := percentiles(&acc, weight, binOf(lo), binOf(hi), lo, hi, [3]float64{0.50, 0.95, 0.99})
		st.Latency = &LatencyStats{Avg: sum / float64(latN), P50: p[0], P95: p[1], P99: p[2], Max: hi}
	}
	return upMs, first * spec.widthMs
}

// floorDiv divides rounding towards minus infinity, so times before 1970
// fall in their own periods too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// mod is a's remainder by b > 0, in [0, b).
func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
