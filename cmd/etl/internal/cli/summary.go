package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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
	// Discovery is etl discover's reconciliation; nil for etl run.
	Discovery *discoverySummary
}

func summarize(c *Config, w *wiring, res pipeline.Result) Summary {
	s := Summary{
		RunID: c.RunID, Read: res.Read, Counts: res.Counts, Configured: c.Rate,
		Unknown: res.Unknown, Problems: res.Problems, Files: res.Files,
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
	}
	if s.Discovery != nil {
		m["discovery"] = s.Discovery.JSON()
	}
	return m
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

// writeMetrics writes node_exporter textfile-collector metrics atomically:
// a temporary file in the same directory, then rename.
func writeMetrics(path string, s Summary) error {
	var b strings.Builder
	metric := func(name, help, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("cms_etl_rows", "Input rows of the last run by outcome.", "gauge")
	for _, o := range outcome.All {
		fmt.Fprintf(&b, "cms_etl_rows{outcome=%q} %d\n", o, s.Counts[o])
	}
	metric("cms_etl_rows_read", "Input rows read by the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_rows_read %d\n", s.Read)
	metric("cms_etl_requests", "HTTP attempts made by the last run, retries included.", "gauge")
	fmt.Fprintf(&b, "cms_etl_requests %d\n", s.Requests)
	metric("cms_etl_retries", "Retried attempts in the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_retries %d\n", s.Retries)
	metric("cms_etl_http_throttled", "HTTP 429 answers in the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_http_throttled %d\n", s.Throttled)
	metric("cms_etl_rate_configured", "Configured requests per second (0 = unlimited).", "gauge")
	fmt.Fprintf(&b, "cms_etl_rate_configured %g\n", s.Configured)
	metric("cms_etl_rate_achieved", "Achieved requests per second over the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_rate_achieved %g\n", round1(s.AchievedRate))
	metric("cms_etl_rate_final", "Requests per second in force at the end of the last run (0 = unlimited).", "gauge")
	fmt.Fprintf(&b, "cms_etl_rate_final %g\n", round1(s.FinalRate))
	metric("cms_etl_throttle_events", "Throttling the last run acted on (429 or 503 with Retry-After, one per cooldown; sustained transient trouble).", "gauge")
	fmt.Fprintf(&b, "cms_etl_throttle_events %d\n", s.ThrottleEvents)
	metric("cms_etl_rate_cuts", "Multiplicative rate cuts in the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_rate_cuts %d\n", s.RateCuts)
	metric("cms_etl_rate_pauses", "Pool-wide pauses for a Retry-After in the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_rate_pauses %d\n", s.RatePauses)
	metric("cms_etl_retries_transient", "Retries after transient faults (not throttling) in the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_retries_transient %d\n", s.TransientRetries)
	metric("cms_etl_retry_budget_exhausted", "Calls the retry budget left failed in the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_retry_budget_exhausted %d\n", s.BudgetExhausted)
	if s.RateGroup != "" {
		metric("cms_etl_rate_group_members", "Live members of the rate group at the end of the last run.", "gauge")
		fmt.Fprintf(&b, "cms_etl_rate_group_members{group=%q} %d\n", s.RateGroup, s.GroupMembers)
	}
	metric("cms_etl_latency_seconds", "Request latency quantiles of the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_latency_seconds{quantile=\"0.5\"} %g\n", s.LatencyP50.Seconds())
	fmt.Fprintf(&b, "cms_etl_latency_seconds{quantile=\"0.95\"} %g\n", s.LatencyP95.Seconds())
	metric("cms_etl_unknown_codes", "Codes missing from the code tables in the last run.", "gauge")
	unknown := append([]pipeline.UnknownCode(nil), s.Unknown...)
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].String() < unknown[j].String() })
	for _, u := range unknown {
		fmt.Fprintf(&b, "cms_etl_unknown_codes{field=%q,code=\"%d\"} %d\n", u.Field, u.Code, u.Count)
	}
	metric("cms_etl_duration_seconds", "Duration of the last run.", "gauge")
	fmt.Fprintf(&b, "cms_etl_duration_seconds %g\n", s.Duration.Seconds())
	metric("cms_etl_exit_code", "Exit code of the last run (0 ok, 1 aborted, 2 usage error, 3 partial).", "gauge")
	fmt.Fprintf(&b, "cms_etl_exit_code %d\n", s.ExitCode)
	metric("cms_etl_last_run_timestamp_seconds", "When the last run started.", "gauge")
	fmt.Fprintf(&b, "cms_etl_last_run_timestamp_seconds %d\n", s.Started.Unix())

	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write metrics %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write metrics: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write metrics %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}
