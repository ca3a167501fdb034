package adapters

import (
	"math"
	"sync"
	"time"
)

// Histogram records durations in logarithmic buckets (about 4% wide) so
// quantiles cost constant memory however many requests a night makes.
type Histogram struct {
	mu     sync.Mutex
	counts [histBuckets]int64
	total  int64
}

const (
	histBuckets = 512
	histBase    = 1.04
	histMin     = float64(10 * time.Microsecond)
)

func bucketOf(d time.Duration) int {
	v := float64(d)
	if v <= histMin {
		return 0
	}
	b := int(math.Log(v/histMin)/math.Log(histBase)) + 1
	return min(b, histBuckets-1)
}

func bucketUpper(b int) time.Duration {
	return time.Duration(histMin * math.Pow(histBase, float64(b)))
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	b := bucketOf(d)
	h.mu.Lock()
	h.counts[b]++
	h.total++
	h.mu.Unlock()
}

// Quantile returns the upper bound of the bucket holding quantile q (0..1);
// 0 when nothing was observed.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen int64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return bucketUpper(b)
		}
	}
	return bucketUpper(histBuckets - 1)
}
