package cli

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/internal/outcome"
)

// A run's metrics, defined once: the batch textfile (--metrics-file,
// written at the end with prometheus.WriteToTextfile) and a follower's
// /metrics (--listen) gather the same registry. The summary metrics are
// gauges read from a Summary: the final one for the textfile, a snapshot of
// the run so far for a scrape. Names are a contract with dashboards and
// alerts: add, never rename (README.md lists every one).

// summaryMetric is one metric family read from a Summary.
type summaryMetric struct {
	name, help string
	labels     []string
	// final: only in the report of a finished run (a scrape of a running
	// one leaves it out: an exit code does not exist yet).
	final bool
	value func(s *Summary, emit func(v float64, labels ...string))
}

// rowsByOutcome emits a row count for every outcome, zeros included, so a
// series never disappears from one run to the next.
func rowsByOutcome(s *Summary, emit func(float64, ...string)) {
	for _, o := range outcome.All {
		emit(float64(s.Counts[o]), string(o))
	}
}

// summaryMetrics are the metrics of the summary, in the textfile's order.
var summaryMetrics = []summaryMetric{
	{name: "cms_etl_rows", help: "Input rows of the last run by outcome.", labels: []string{"outcome"},
		value: rowsByOutcome},
	{name: "cms_etl_rows_read", help: "Input rows read by the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Read)) }},
	{name: "cms_etl_requests", help: "HTTP attempts made by the last run, retries included.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Requests)) }},
	{name: "cms_etl_retries", help: "Retried attempts in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Retries)) }},
	{name: "cms_etl_http_throttled", help: "HTTP 429 answers in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Throttled)) }},
	{name: "cms_etl_http_unavailable", help: "HTTP 503 answers in the last run (with or without Retry-After).",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Unavailable)) }},
	{name: "cms_etl_rate_configured", help: "Configured requests per second (0 = unlimited).",
		value: func(s *Summary, emit func(float64, ...string)) { emit(s.Configured) }},
	{name: "cms_etl_rate_achieved", help: "Achieved requests per second over the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(round1(s.AchievedRate)) }},
	{name: "cms_etl_rate_final", help: "Requests per second in force at the end of the last run (0 = unlimited).",
		value: func(s *Summary, emit func(float64, ...string)) { emit(round1(s.FinalRate)) }},
	{name: "cms_etl_throttle_events", help: "Throttling the last run acted on (429 or 503 with Retry-After, one per cooldown; sustained transient trouble).",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.ThrottleEvents)) }},
	{name: "cms_etl_rate_cuts", help: "Multiplicative rate cuts in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.RateCuts)) }},
	{name: "cms_etl_rate_pauses", help: "Pool-wide pauses for a Retry-After in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.RatePauses)) }},
	{name: "cms_etl_retries_transient", help: "Retries after transient faults (not throttling) in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.TransientRetries)) }},
	{name: "cms_etl_retry_budget_exhausted", help: "Calls the retry budget left failed in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.BudgetExhausted)) }},
	{name: "cms_etl_rate_group_members", help: "Live members of the rate group at the end of the last run.", labels: []string{"group"},
		value: func(s *Summary, emit func(float64, ...string)) {
			if s.RateGroup != "" {
				emit(float64(s.GroupMembers), s.RateGroup)
			}
		}},
	{name: "cms_etl_rate_group_share", help: "This process's share of the rate group's rate, requests per second.", labels: []string{"group"},
		value: func(s *Summary, emit func(float64, ...string)) {
			if s.RateGroup != "" {
				emit(round1(s.GroupShare), s.RateGroup)
			}
		}},
	{name: "cms_etl_latency_seconds", help: "Request latency quantiles of the last run.", labels: []string{"quantile"},
		value: func(s *Summary, emit func(float64, ...string)) {
			emit(s.LatencyP50.Seconds(), "0.5")
			emit(s.LatencyP95.Seconds(), "0.95")
		}},
	{name: "cms_etl_unknown_codes", help: "Codes missing from the code tables in the last run.", labels: []string{"field", "code"},
		value: func(s *Summary, emit func(float64, ...string)) {
			for _, u := range s.Unknown {
				emit(float64(u.Count), u.Field, strconv.FormatInt(u.Code, 10))
			}
		}},
	{name: "cms_etl_field_problems", help: "Fields the last run could not interpret (written as NULL).",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Problems)) }},
	{name: "cms_etl_failures", help: "Failed and rejected rows of the last run by outcome and code (result code, \"HTTP nnn\", or \"none\").",
		labels: []string{"outcome", "code"},
		value: func(s *Summary, emit func(float64, ...string)) {
			for _, f := range s.Failures {
				code := f.Code
				if code == "" {
					code = "none"
				}
				emit(float64(f.Count), string(f.Outcome), code)
			}
		}},
	{name: "cms_etl_parquet_files", help: "Parquet files the last run made visible.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Files)) }},
	{name: "cms_etl_api_outages", help: "API outages a follower rode out in the last run (paused, probed, resumed).",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Outages)) }},
	{name: "cms_etl_api_paused_seconds", help: "Seconds a follower was paused for API outages in the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(s.Paused.Seconds()) }},
	{name: "cms_etl_duration_seconds", help: "Duration of the last run.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(s.Duration.Seconds()) }},
	{name: "cms_etl_exit_code", help: "Exit code of the last run (0 ok, 1 aborted, 2 usage error, 3 partial).", final: true,
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.ExitCode)) }},
	{name: "cms_etl_last_run_timestamp_seconds", help: "When the last run started.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Started.Unix())) }},
}

// summaryCollector exports metrics read from the Summary snapshot returns;
// final says the run has ended.
type summaryCollector struct {
	metrics  []summaryMetric
	snapshot func() (s Summary, final bool)
	descs    []*prometheus.Desc
}

func newSummaryCollector(metrics []summaryMetric, snapshot func() (Summary, bool)) *summaryCollector {
	c := &summaryCollector{metrics: metrics, snapshot: snapshot}
	for _, m := range metrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, m.labels, nil))
	}
	return c
}

func (c *summaryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *summaryCollector) Collect(ch chan<- prometheus.Metric) {
	s, final := c.snapshot()
	for i, m := range c.metrics {
		if m.final && !final {
			continue
		}
		m.value(&s, func(v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, v, labels...)
		})
	}
}

// discoverMetrics are etl discover's metrics (its --metrics-file). The names
// start with cms_etl_discover_, so its file can sit beside etl run's in the
// collector's directory.
var discoverMetrics = append([]summaryMetric{
	{name: "cms_etl_discover_rows", help: "Calls the last discovery handed to its outputs, by outcome.", labels: []string{"outcome"},
		value: rowsByOutcome},
	{name: "cms_etl_discover_requests", help: "querycalls requests of the last discovery, retries included.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Requests)) }},
	{name: "cms_etl_discover_enqueued", help: "Calls the last discovery queued, by query: new rows, or already queued.", labels: []string{"query", "state"},
		value: func(s *Summary, emit func(float64, ...string)) {
			if s.Discovery == nil {
				return
			}
			for _, q := range sortedKeys(s.Discovery.Enqueued) {
				a := s.Discovery.Enqueued[q]
				emit(float64(a.Inserted), q, "inserted")
				emit(float64(a.Queued), q, "already_queued")
			}
		}},
	{name: "cms_etl_discover_duration_seconds", help: "Duration of the last discovery.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(s.Duration.Seconds()) }},
	{name: "cms_etl_discover_exit_code", help: "Exit code of the last discovery (0 ok, 1 aborted, 2 usage error, 3 partial).", final: true,
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.ExitCode)) }},
	{name: "cms_etl_discover_last_run_timestamp_seconds", help: "When the last discovery started.",
		value: func(s *Summary, emit func(float64, ...string)) { emit(float64(s.Started.Unix())) }},
},
	tallyMetric("cms_etl_discover_slices", "Slices of the last discovery accepted (after bisection), by VDN and direction.",
		func(t discover.Tally) int64 { return int64(t.Slices) }),
	tallyMetric("cms_etl_discover_slices_open", "Slices of the last discovery not listed because they had not closed yet.",
		func(t discover.Tally) int64 { return int64(t.Open) }),
	tallyMetric("cms_etl_discover_slices_failed", "Slices of the last discovery that failed or never added up.",
		func(t discover.Tally) int64 { return int64(t.Failed) }),
	tallyMetric("cms_etl_discover_pages", "querycalls pages of the last discovery.",
		func(t discover.Tally) int64 { return int64(t.Pages) }),
	tallyMetric("cms_etl_discover_count_reported", "Calls the API's counts reported in the accepted slices.",
		func(t discover.Tally) int64 { return t.Reported }),
	tallyMetric("cms_etl_discover_rows_kept", "Distinct calls the last discovery kept.",
		func(t discover.Tally) int64 { return t.Kept }),
	tallyMetric("cms_etl_discover_bisections", "Slices the last discovery cut in half because their pages did not add up.",
		func(t discover.Tally) int64 { return int64(t.Bisections) }),
	tallyMetric("cms_etl_discover_rows_rejected", "Listed rows that are no valid key (no callId, undecodable, not a key).",
		func(t discover.Tally) int64 { return t.Rejected }),
	tallyMetric("cms_etl_discover_both_directions", "Listings dropped because the other direction's pass listed the call too (kept once, as inbound).",
		func(t discover.Tally) int64 { return t.BothDirections }),
	tallyMetric("cms_etl_discover_duplicates_same_pass", "Listings dropped because the same pass had listed the call in another slice.",
		func(t discover.Tally) int64 { return t.SamePass }),
)

// tallyMetric is a discovery figure per VDN and direction.
func tallyMetric(name, help string, value func(discover.Tally) int64) summaryMetric {
	return summaryMetric{name: name, help: help, labels: []string{"vdn", "direction"},
		value: func(s *Summary, emit func(float64, ...string)) {
			if s.Discovery == nil {
				return
			}
			for _, t := range s.Discovery.Tallies {
				emit(float64(value(t)), strconv.Itoa(t.VDN), direction(t.Inbound))
			}
		}}
}

// writeSummaryTextfile writes metrics of a finished run's summary for
// node_exporter's textfile collector, atomically.
func writeSummaryTextfile(path string, metrics []summaryMetric, s Summary) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSummaryCollector(metrics, func() (Summary, bool) { return s, true }))
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// metricNames lists every metric etl run or etl discover may export, for
// the README check.
func metricNames() []string {
	var out []string
	for _, m := range summaryMetrics {
		out = append(out, m.name)
	}
	for _, d := range liveMetrics {
		out = append(out, d.name)
	}
	for _, m := range discoverMetrics {
		out = append(out, m.name)
	}
	return out
}
