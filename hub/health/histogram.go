package health

import (
	"math"
	"slices"
)

// The latency histogram is log-linear and fixed: the contract asks for
// percentiles within 5% or 1 ms, whichever is larger, and that is exactly
// a 2 ms linear bin below 20 ms (where 1 ms is the larger allowance) and
// a logarithmic bin of ratio 1.1 above it. Each bin reports one value
// (binValue) chosen so the worst error is the same at both ends of the
// bin: 1 ms for a linear bin, (r-1)/(r+1) = 4.8% for a log bin.
//
// HdrHistogram (in go.mod for pongbench) would meet the bound too, but
// it needs 2 significant digits for it (1 is 10%), and over 1 ms-60 s
// that is 1280 int64 counts, 10 KiB on the heap, where the statistics
// need 58 histograms per exchange; these are 95 uint16 counts, 190
// bytes inline in the bucket, with no pointer for the GC to follow and
// nothing allocated per pong.
const (
	linearWidth = 2.0  // ms
	logFloor    = 20.0 // ms: where 5% grows past 1 ms
	logRatio    = 1.1
	linearBins  = int(logFloor / linearWidth)
	// logBins reaches 20·1.1^84 ≈ 61 s. Connectors report round trips
	// of milliseconds; a percentile above the last log bin is reported
	// as the window's max (exact when it is the max). Two bytes a bin in
	// 58 buckets: each 6 bins more would cost 12 bytes a bucket and, by
	// Go's size classes, 2 KiB an exchange.
	logBins = 84
	numBins = linearBins + logBins + 1 // the last bin holds everything above
)

var (
	// logBounds[k] is the lower bound of bin linearBins+k.
	logBounds [logBins + 1]float64
	// binValue is what a percentile falling in a bin reports (before it
	// is clamped to the window's min and max); +Inf for the top bin, so
	// the clamp reports the max.
	binValue [numBins]float64
)

func init() {
	for i := range linearBins {
		binValue[i] = float64(i)*linearWidth + linearWidth/2
	}
	b := logFloor
	for k := range logBounds {
		logBounds[k] = b
		b *= logRatio
	}
	for k := range logBins {
		lo, hi := logBounds[k], logBounds[k+1]
		binValue[linearBins+k] = 2 * lo * hi / (lo + hi)
	}
	binValue[numBins-1] = math.Inf(1)
}

// binOf returns the bin of a latency in ms, which must be finite and >= 0.
func binOf(ms float64) int {
	if ms < logFloor {
		return int(ms / linearWidth)
	}
	// The bin whose lower bound is the greatest one at most ms; a
	// search of the bounds rather than a logarithm, so a value on a
	// bound is never put below it by rounding.
	k, exact := slices.BinarySearch(logBounds[:], ms)
	if !exact {
		k--
	}
	return linearBins + k
}

// hist counts latencies by bin. A count that would pass 65535 halves
// every count of the histogram and raises shift, so each count weighs
// 1<<shift, and from then on only every (1<<shift)-th latency is counted
// (a systematic sample, so the weights still sum to about the samples
// seen): a flood of pongs costs precision of rank, never memory, and
// never wraps a count. At the pong rates of connectors (one in 30 s) no
// bucket ever gets there.
type hist struct {
	n     [numBins]uint16
	shift uint8
	skip  uint16 // latencies still to pass over before the next is counted
}

// maxShift is where a full bin stays full: 65535 counts of 1<<16 are the
// 2^32 latencies a bucket's latN can count.
const maxShift = 16

func (h *hist) add(bin int) {
	if h.skip > 0 {
		h.skip--
		return
	}
	if h.n[bin] == math.MaxUint16 {
		if h.shift == maxShift {
			return
		}
		for i, c := range h.n {
			// Rounding up keeps every bin that was seen in the picture.
			h.n[i] = uint16((uint32(c) + 1) >> 1)
		}
		h.shift++
	}
	h.n[bin]++
	h.skip = 1<<h.shift - 1
}

// sumInto adds h's weighted counts to acc and returns the weight added.
// Only bins from..to are read: the bins of the bucket's exact lo and hi,
// outside which every count is zero (a halving never makes a zero
// count one, and a sampled latency lies within lo..hi like any other).
func (h *hist) sumInto(acc *[numBins]uint64, from, to int) uint64 {
	var total uint64
	for i := from; i <= to; i++ {
		w := uint64(h.n[i]) << h.shift
		acc[i] += w
		total += w
	}
	return total
}

// percentiles returns the nearest-rank quantiles qs (ascending, each in
// (0, 1]) of acc, whose weights sum to total > 0 and lie in bins
// from..to, each clamped to [lo, hi], the exact extremes of the samples:
// the true sample lies in the same bin and in [lo, hi], so the clamp
// only ever brings the answer closer (and makes it exact when every
// sample is the same).
func percentiles(acc *[numBins]uint64, total uint64, from, to int, lo, hi float64, qs [3]float64) [3]float64 {
	var out [3]float64
	var seen uint64
	q := 0
	for i := from; i <= to && q < len(qs); i++ {
		seen += acc[i]
		for q < len(qs) {
			rank := max(uint64(math.Ceil(qs[q]*float64(total))), 1)
			if seen < rank {
				break
			}
			// The first and the last sample are known exactly: with the
			// few pongs of a short window, p95 and p99 are the max.
			switch {
			case rank >= total:
				out[q] = hi
			case rank == 1:
				out[q] = lo
			default:
				out[q] = clampValue(binValue[i], lo, hi)
			}
			q++
		}
	}
	for ; q < len(qs); q++ { // only if the weights did not add up
		out[q] = hi
	}
	return out
}

// clampValue is a bin's value as reported: two decimals (which keep the
// JSON short and add at most 0.005 ms), within [lo, hi].
func clampValue(v, lo, hi float64) float64 {
	if !math.IsInf(v, 1) {
		v = math.Round(v*100) / 100
	}
	return min(max(v, lo), hi)
}
