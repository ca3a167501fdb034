package cli

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

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

// summaryMetrics are the metrics of the summary, in the textfile's order.
var summaryMetrics = []summaryMetric{
	{name: "cms_etl_rows", help: "Input rows of the last run by outcome.", labels: []string{"outcome"},
		value: func(s *Summary, emit func(float64, ...string)) {
			for _, o := range outcome.All {
				emit(float64(s.Counts[o]), string(o))
			}
		}},
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

// summaryCollector exports summaryMetrics of the Summary snapshot returns;
// final says the run has ended.
type summaryCollector struct {
	snapshot func() (s Summary, final bool)
	descs    []*prometheus.Desc
}

func newSummaryCollector(snapshot func() (Summary, bool)) *summaryCollector {
	c := &summaryCollector{snapshot: snapshot}
	for _, m := range summaryMetrics {
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
	for i, m := range summaryMetrics {
		if m.final && !final {
			continue
		}
		m.value(&s, func(v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, v, labels...)
		})
	}
}

// metricNames lists every metric a run may export, for the README check.
func metricNames() []string {
	var out []string
	for _, m := range summaryMetrics {
		out = append(out, m.name)
	}
	for _, d := range liveMetrics {
		out = append(out, d.name)
	}
	return out
}
