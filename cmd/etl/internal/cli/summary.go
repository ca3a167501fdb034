package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/internal/pipeline/adapters"
)

// Summary is what a run reports: on stderr for people, as one JSON log event
// for machines, in the metrics file and in cms.etl_run.
type Summary struct {
	RunID        string
	Status       string // succeeded, partial, aborted
	ExitCode     int
	Error        string
	Interrupted  bool
	Read         int64
	Counts       outcome.Counts
	Requests     int64 // requests sent, retries included
	Retries      int64
	Throttled    int64
	Unavailable  int64
	RateCuts     int64
	Configured   float64
	AchievedRate float64
	// FinalRate is the limit in force at the end (0 = unlimited).
	FinalRate float64
	// ThrottleEvents counts throttling this process acted on: bursts of 429
	// (or 503 with Retry-After) one per cooldown, and windows of sustained
	// transient trouble.
	ThrottleEvents int64
	RatePauses     int64 // pool-wide pauses for a Retry-After
	// TransientRetries are retries after a transient fault (not a throttle).
	TransientRetries int64
	// BudgetExhausted counts calls the retry budget ended transient.
	BudgetExhausted int64
	RateGroup       string // --rate-group, "" when alone
	GroupMembers    int    // live members of the group at the end
	GroupRate       float64
	GroupShare      float64 // this process's share of GroupRate
	LatencyP50      time.Duration
	LatencyP95      time.Duration
	Unknown         []pipeline.UnknownCode
	Problems        int64
	Files           int
	Duration        time.Duration
	Started         time.Time
	// Failures are the failed and rejected rows by outcome and code.
	Failures []pipeline.FailureCode
	// Outages counts the API outages a follower rode out (paused, probed,
	// resumed); Paused is how long it was paused.
	Outages int64
	Paused  time.Duration
	// Discovery is etl discover's reconciliation; nil for etl run.
	Discovery *discoverySummary
}

func summarize(c *Config, w *wiring, res pipeline.Result) Summary {
	s := Summary{
		RunID: c.RunID, Read: res.Read, Counts: res.Counts, Configured: c.Rate,
		Unknown: res.Unknown, Problems: res.Problems, Failures: res.Failures, Files: res.Files,
		Duration: res.Finished.Sub(res.Started), Started: res.Started, Interrupted: res.Interrupted,
	}
	if k := w.counters; k != nil {
		s.Requests, s.Retries = k.Attempts.Load(), k.Retries.Load()
		s.TransientRetries = k.TransientRetries.Load()
		s.Throttled, s.Unavailable = k.Throttled.Load(), k.Unavail.Load()
		s.LatencyP50, s.LatencyP95 = k.Latency.Quantile(0.5), k.Latency.Quantile(0.95)
	}
	if w.rate != nil {
		st := w.rate.Stats()
		s.RateCuts, s.ThrottleEvents, s.RatePauses = st.Cuts, st.ThrottleEvents, st.Pauses
		s.BudgetExhausted, s.FinalRate = st.BudgetExhausted, st.Limit
	}
	if w.group != nil {
		st := w.group.Stats()
		s.RateGroup, s.GroupMembers, s.GroupRate, s.GroupShare = st.Name, st.Members, st.GroupRate, st.Share
	}
	if w.obs != nil {
		s.Outages, s.Paused = w.obs.outageStats()
	}
	if secs := s.Duration.Seconds(); secs > 0 {
		s.AchievedRate = float64(s.Requests) / secs
	}
	switch {
	case res.Err != nil:
		s.Status, s.ExitCode, s.Error = "aborted", ExitAborted, res.Err.Error()
		var fe *adapters.FatalAnswer
		if errors.As(res.Err, &fe) {
			s.Error += " (stopped at once: repeated bad signatures can get the caller's IP locked)"
		}
	case res.Counts[outcome.Failed] > 0 || res.Counts[outcome.Rejected] > 0:
		s.Status, s.ExitCode = "partial", ExitPartial
	default:
		s.Status, s.ExitCode = "succeeded", ExitOK
	}
	if c.Follow && s.ExitCode == ExitPartial {
		// A follower's failed rows are data in the queue (etl requeue):
		// its normal end, a signal, exits 0.
		s.ExitCode = ExitOK
	}
	return s
}

// JSON is the summary as stored in cms.etl_run.summary.
func (s Summary) JSON() map[string]any {
	counts := map[string]int64{}
	for _, o := range outcome.All {
		counts[string(o)] = s.Counts[o]
	}
	m := map[string]any{
		"status": s.Status, "exit_code": s.ExitCode, "error": s.Error, "rows_read": s.Read, "outcomes": counts,
		"requests": s.Requests, "retries": s.Retries, "http_429": s.Throttled, "http_503": s.Unavailable,
		"rate_configured": s.Configured, "rate_achieved": round1(s.AchievedRate), "rate_cuts": s.RateCuts,
		"latency_p50_ms": ms(s.LatencyP50), "latency_p95_ms": ms(s.LatencyP95), "unknown_codes": s.Unknown,
		"field_problems": s.Problems, "parquet_files": s.Files, "duration_s": round1(s.Duration.Seconds()),
		"rate_final": round1(s.FinalRate), "throttle_events": s.ThrottleEvents, "rate_pauses": s.RatePauses,
		"retries_transient": s.TransientRetries, "retry_budget_exhausted": s.BudgetExhausted,
		"rate_group": s.RateGroup, "rate_group_members": s.GroupMembers,
		"failure_codes": failureCodes(s.Failures), "api_outages": s.Outages, "api_paused_s": round1(s.Paused.Seconds()),
	}
	if s.Discovery != nil {
		m["discovery"] = s.Discovery.JSON()
	}
	return m
}

// failureCodes is the JSON form of the failures by outcome and code:
// {"failed": {"0100002": 3, "HTTP 503": 1}, "rejected": {"none": 2}}.
func failureCodes(fs []pipeline.FailureCode) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for _, f := range fs {
		code := f.Code
		if code == "" {
			code = "none"
		}
		if out[string(f.Outcome)] == nil {
			out[string(f.Outcome)] = map[string]int64{}
		}
		out[string(f.Outcome)][code] += f.Count
	}
	return out
}

func printSummary(w io.Writer, s Summary) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nrun %s %s in %s\n", s.RunID, s.Status, s.Duration.Round(time.Millisecond))
	if s.Error != "" {
		fmt.Fprintf(&b, "  reason:      %s\n", s.Error)
	}
	fmt.Fprintf(&b, "  rows read:   %d\n", s.Read)
	for _, o := range outcome.All {
		if n := s.Counts[o]; n > 0 || o == outcome.Loaded || o == outcome.NoData || o == outcome.Failed || o == outcome.Rejected {
			fmt.Fprintf(&b, "    %-15s %d\n", o, n)
		}
	}
	fmt.Fprintf(&b, "  requests:    %d (retries %d, of them after transient faults %d; 429s %d, 503s %d)\n",
		s.Requests, s.Retries, s.TransientRetries, s.Throttled, s.Unavailable)
	if s.BudgetExhausted > 0 {
		fmt.Fprintf(&b, "  retry budget exhausted: %d calls not retried (left failed for the next run)\n", s.BudgetExhausted)
	}
	perSec := func(r float64) string {
		if r <= 0 {
			return "unlimited"
		}
		return strconv.FormatFloat(r, 'f', -1, 64) + "/s"
	}
	fmt.Fprintf(&b, "  rate:        configured %s, achieved %.1f/s", perSec(s.Configured), s.AchievedRate)
	if s.Configured > 0 {
		fmt.Fprintf(&b, ", final %s", perSec(round1(s.FinalRate)))
	}
	b.WriteByte('\n')
	if s.ThrottleEvents > 0 || s.RateCuts > 0 || s.RatePauses > 0 {
		fmt.Fprintf(&b, "  throttling:  %d events, %d rate cuts, %d pauses\n", s.ThrottleEvents, s.RateCuts, s.RatePauses)
	}
	if s.RateGroup != "" {
		fmt.Fprintf(&b, "  rate group:  %s, %d members, this process's share %s of %s\n",
			s.RateGroup, s.GroupMembers, perSec(round1(s.GroupShare)), perSec(s.GroupRate))
	}
	fmt.Fprintf(&b, "  latency:     p50 %s, p95 %s\n", s.LatencyP50.Round(100*time.Microsecond), s.LatencyP95.Round(100*time.Microsecond))
	if len(s.Unknown) > 0 {
		parts := make([]string, len(s.Unknown))
		for i, u := range s.Unknown {
			parts[i] = u.String()
		}
		fmt.Fprintf(&b, "  unknown codes: %s\n", strings.Join(parts, ", "))
	}
	if s.Problems > 0 {
		fmt.Fprintf(&b, "  uninterpretable fields written as NULL: %d\n", s.Problems)
	}
	if len(s.Failures) > 0 {
		parts := make([]string, len(s.Failures))
		for i, f := range s.Failures {
			code := f.Code
			if code == "" {
				code = "none"
			}
			parts[i] = fmt.Sprintf("%s %s x%d", f.Outcome, code, f.Count)
		}
		fmt.Fprintf(&b, "  failure codes: %s\n", strings.Join(parts, ", "))
	}
	if s.Outages > 0 {
		fmt.Fprintf(&b, "  API outages: %d ridden out, paused %s in all\n", s.Outages, s.Paused.Round(time.Second))
	}
	if s.Discovery != nil {
		s.Discovery.print(&b)
	}
	fmt.Fprint(w, b.String())
}

func logSummary(log zerolog.Logger, s Summary) {
	ev := log.Info()
	if s.ExitCode == ExitAborted {
		ev = log.Error()
	}
	// The same figures as cms.etl_run.summary, so both read alike.
	ev.Str("event", "run_summary").Fields(s.JSON()).Msg("run summary")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func round1(f float64) float64   { return float64(int64(f*10+0.5)) / 10 }
