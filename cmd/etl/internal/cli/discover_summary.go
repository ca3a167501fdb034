package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/pipeline/adapters"
)

// discoverySummary is what etl discover adds to the run summary: its window
// and, per VDN and direction, how the slices reconciled (the count the API
// reported against the calls kept).
type discoverySummary struct {
	CCID     int
	From, To time.Time
	Slice    time.Duration
	Tallies  []discover.Tally
	Failures []string               // slices that failed, rows rejected
	Enqueued map[string]queue.Added // by query; nil without --enqueue
}

func newDiscoverySummary(cfg discover.Config, res discover.Result, enq *adapters.Enqueue) *discoverySummary {
	s := &discoverySummary{CCID: cfg.CCID, From: cfg.From, To: cfg.To, Slice: cfg.Slice, Tallies: res.Tallies, Failures: res.Failures}
	if s.Slice == 0 {
		s.Slice = discover.DefaultSlice
	}
	if enq != nil {
		s.Enqueued = enq.Added()
	}
	return s
}

// total adds up the tallies of every VDN and direction.
func (s *discoverySummary) total() discover.Tally {
	var t discover.Tally
	for _, x := range s.Tallies {
		t.Slices += x.Slices
		t.Open += x.Open
		t.Failed += x.Failed
		t.Pages += x.Pages
		t.Reported += x.Reported
		t.Kept += x.Kept
		t.Bisections += x.Bisections
		t.Rejected += x.Rejected
		t.BothDirections += x.BothDirections
		t.SamePass += x.SamePass
	}
	return t
}

// partial reports a discovery that did not list the whole window: a slice
// failed, a row was rejected, or a slice had not closed yet.
func (s *discoverySummary) partial() bool {
	t := s.total()
	return len(s.Failures) > 0 || t.Failed > 0 || t.Rejected > 0 || t.Open > 0
}

func direction(inbound bool) string {
	if inbound {
		return "in"
	}
	return "out"
}

func tallyJSON(t discover.Tally) map[string]any {
	return map[string]any{
		"slices": t.Slices, "slices_open": t.Open, "slices_failed": t.Failed, "pages": t.Pages,
		"count_reported": t.Reported, "rows_kept": t.Kept, "bisections": t.Bisections,
		"rows_rejected": t.Rejected, "both_directions": t.BothDirections, "duplicates_same_pass": t.SamePass,
	}
}

// JSON is the "discovery" member of the summary (the run_summary event,
// cms.etl_run.summary).
func (s *discoverySummary) JSON() map[string]any {
	var by []map[string]any
	for _, t := range s.Tallies {
		m := tallyJSON(t)
		m["vdn"], m["direction"] = t.VDN, direction(t.Inbound)
		by = append(by, m)
	}
	failures := s.Failures
	if failures == nil {
		failures = []string{}
	}
	m := map[string]any{
		"cc_id": s.CCID, "from": s.From.UTC().Format(time.RFC3339), "to": s.To.UTC().Format(time.RFC3339),
		"slice_s": s.Slice.Seconds(), "by_vdn_direction": by, "total": tallyJSON(s.total()), "failures": failures,
	}
	if s.Enqueued != nil {
		q := map[string]any{}
		for name, a := range s.Enqueued {
			q[name] = map[string]int64{"inserted": a.Inserted, "already_queued": a.Queued}
		}
		m["enqueued"] = q
	}
	return m
}

// maxFailuresShown bounds the failed slices the human summary lists; the
// JSON summary has them all.
const maxFailuresShown = 10

// print writes the discovery's part of the human summary.
func (s *discoverySummary) print(b *strings.Builder) {
	fmt.Fprintf(b, "  discovery:   ccId %d, %s .. %s in slices of %s\n", s.CCID,
		s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339), s.Slice)
	fmt.Fprintf(b, "    %5s %4s %7s %5s %7s %6s %9s %9s %10s %9s\n",
		"vdn", "dir", "slices", "open", "failed", "pages", "count", "kept", "bisected", "rejected")
	row := func(vdn, dir string, t discover.Tally) {
		fmt.Fprintf(b, "    %5s %4s %7d %5d %7d %6d %9s %9s %10d %9d\n", vdn, dir, t.Slices, t.Open, t.Failed, t.Pages,
			thousands(t.Reported), thousands(t.Kept), t.Bisections, t.Rejected)
	}
	for _, t := range s.Tallies {
		row(fmt.Sprint(t.VDN), direction(t.Inbound), t)
	}
	if len(s.Tallies) > 1 {
		row("all", "", s.total())
	}
	if t := s.total(); t.BothDirections > 0 || t.SamePass > 0 {
		if t.BothDirections > 0 {
			fmt.Fprintf(b, "    %d calls were listed by both directions' passes: kept once, as inbound (listed_both_directions)\n", t.BothDirections)
		}
		if t.SamePass > 0 {
			fmt.Fprintf(b, "    %d listings repeated a call the same pass had listed in another slice: kept once\n", t.SamePass)
		}
	}
	if s.Enqueued != nil {
		var parts []string
		for _, q := range sortedKeys(s.Enqueued) {
			a := s.Enqueued[q]
			parts = append(parts, fmt.Sprintf("%s %s new, %s already queued", q, thousands(a.Inserted), thousands(a.Queued)))
		}
		fmt.Fprintf(b, "  queued:      %s\n", strings.Join(parts, "; "))
	}
	for i, f := range s.Failures {
		if i == maxFailuresShown {
			fmt.Fprintf(b, "    ... and %d more (see the run_summary event)\n", len(s.Failures)-i)
			break
		}
		fmt.Fprintf(b, "  failed:      %s\n", f)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// logDiscoveryGaps warns about what the discovery could not list: slices
// not closed yet (and when they will be) and failed slices.
func logDiscoveryGaps(log zerolog.Logger, s *discoverySummary, cfg discover.Config, started time.Time) {
	t := s.total()
	if t.Open > 0 {
		log.Warn().Int("slices_open", t.Open).Time("listable_after", cfg.To.Add(cfg.SettleLag)).
			Msg("slices of the window had not closed (ended less than --settle-lag ago) and were not listed: run etl discover again after listable_after")
	}
	if t.BothDirections > 0 {
		// cms-discovery.md 6.2: keep one row with both flags, and warn.
		log.Warn().Int64("both_directions", t.BothDirections).
			Msg("calls were listed by both the inbound and the outbound pass: each is kept once, as inbound, with listed_both_directions true, and its CDR is asked inbound")
	}
	if t.Failed > 0 || t.Rejected > 0 {
		log.Warn().Int("slices_failed", t.Failed).Int64("rows_rejected", t.Rejected).Strs("failures", s.Failures).
			Msg("the discovery is incomplete: run etl discover again for the same window (calls already written are not written twice)")
	}
}

// writeDiscoverMetrics writes etl discover's node_exporter textfile metrics
// (discoverMetrics).
func writeDiscoverMetrics(path string, s Summary) error {
	return writeSummaryTextfile(path, discoverMetrics, s)
}
