package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/internal/pipeline/adapters"
)

// discoverProgress shows how much of the window a discovery has listed: the
// share of the window (per VDN and direction) that accepted slices cover,
// the calls found and committed, and the requests sent. A bar on a
// terminal, a log line every logEvery otherwise, as etl run's progress.
type discoverProgress struct {
	src   *adapters.Discovery
	w     *wiring
	total time.Duration // the window times the VDNs and directions
	start time.Time
}

func startDiscoverProgress(c *Config, env Env, log zerolog.Logger, src *adapters.Discovery, w *wiring, cfg discover.Config) *progressLoop {
	passes := 0
	for _, on := range []bool{cfg.Inbound, cfg.Outbound} {
		if on {
			passes++
		}
	}
	return startProgressLoop(c.Progress, env, log, &discoverProgress{src: src, w: w,
		total: cfg.To.Sub(cfg.From) * time.Duration(len(cfg.VDNs)*passes), start: time.Now()})
}

type discoverState struct {
	covered, total   time.Duration
	calls, committed int64
	requests         int64
	elapsed          time.Duration
	last             bool
}

func (p *discoverProgress) state(last bool) discoverState {
	covered, calls := p.src.Covered()
	st := discoverState{covered: covered, total: p.total, calls: calls, elapsed: time.Since(p.start), last: last}
	st.committed = p.w.run.Progress().Done
	st.requests = p.w.counters.Attempts.Load()
	return st
}

func (p *discoverProgress) bar(last bool) string { return renderDiscoverBar(p.state(last)) }

func (p *discoverProgress) logLine(log *zerolog.Logger) {
	st := p.state(false)
	ev := log.Info().Float64("covered_pct", round1(st.pct())).Int64("calls", st.calls).Int64("committed", st.committed).
		Int64("requests", st.requests).Float64("req_per_s", round1(rateOver(st.requests, st.elapsed)))
	if eta, ok := st.eta(); ok {
		ev = ev.Float64("eta_s", round1(eta.Seconds()))
	}
	ev.Msg("progress")
}

func (s discoverState) pct() float64 {
	if s.total <= 0 {
		return 0
	}
	return min(100*float64(s.covered)/float64(s.total), 100)
}

// eta extrapolates the coverage so far; slices not closed or failed are
// never covered, so it is a guide, not a promise.
func (s discoverState) eta() (time.Duration, bool) {
	if s.covered <= 0 || s.covered >= s.total {
		return 0, false
	}
	return time.Duration(float64(s.elapsed) * float64(s.total-s.covered) / float64(s.covered)), true
}

// renderDiscoverBar is one line, at most about 75 columns:
//
//	[########------------]  42%  12,345 calls  130 requests  ETA 1m02s
//	[####################] 100%  29,812 calls  301 requests  in 2m27s
func renderDiscoverBar(s discoverState) string {
	var b strings.Builder
	filled := 0
	if s.total > 0 {
		filled = min(int(barWidth*float64(s.covered)/float64(s.total)), barWidth)
	}
	fmt.Fprintf(&b, "[%s%s] %3d%%  %s calls  %s requests", strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled),
		int(s.pct()), thousands(s.calls), thousands(s.requests))
	switch eta, ok := s.eta(); {
	case s.last:
		fmt.Fprintf(&b, "  in %s", shortDuration(s.elapsed))
	case ok:
		fmt.Fprintf(&b, "  ETA %s", shortDuration(eta))
	default:
		b.WriteString("  ETA --")
	}
	return b.String()
}
