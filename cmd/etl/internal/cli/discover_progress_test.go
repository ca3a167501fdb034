package cli

import (
	"testing"
	"time"
)

func TestRenderDiscoverBar(t *testing.T) {
	t.Parallel()
	day := 96 * time.Hour // one day, 2 VDNs, both directions
	tests := []struct {
		name string
		s    discoverState
		want string
	}{
		{"start", discoverState{total: day}, "[--------------------]   0%  0 calls  0 requests  ETA --"},
		{"under way", discoverState{covered: 40 * time.Hour, total: day, calls: 12345, requests: 130, elapsed: 40 * time.Second},
			"[########------------]  41%  12,345 calls  130 requests  ETA 56s"},
		{"last", discoverState{covered: day, total: day, calls: 29812, requests: 301, elapsed: 147 * time.Second, last: true},
			"[####################] 100%  29,812 calls  301 requests  in 2m27s"},
		{"last with open slices", discoverState{covered: 90 * time.Hour, total: day, calls: 28000, requests: 290, elapsed: 2 * time.Second, last: true},
			"[##################--]  93%  28,000 calls  290 requests  in 2s"},
	}
	for _, tc := range tests {
		if got := renderDiscoverBar(tc.s); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
