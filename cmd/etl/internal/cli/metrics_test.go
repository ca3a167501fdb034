package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
)

// The README's metric tables name exactly the metrics the code defines: none
// missing, none that does not exist (a renamed metric breaks dashboards, a
// documented one that is never written misleads them).
func TestREADMEMetricTablesMatchTheCode(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	start := strings.Index(section, "\n## Metrics\n")
	if start < 0 {
		t.Fatal("README.md has no ## Metrics section")
	}
	section = section[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	name := regexp.MustCompile("`(cms_etl_[a-z0-9_]+)`")
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `cms_etl_") {
			continue
		}
		first := strings.Split(line, "|")[1] // the metric column
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	defined := map[string]bool{}
	for _, n := range metricNames() {
		if defined[n] {
			t.Errorf("metric %s is defined twice", n)
		}
		defined[n] = true
	}
	for n := range defined {
		if !documented[n] {
			t.Errorf("metric %s is not in the README's metric tables", n)
		}
	}
	for n := range documented {
		if !defined[n] {
			t.Errorf("the README documents metric %s, which the code does not define", n)
		}
	}
}

// Every figure of the run summary (the run_summary event, cms.etl_run.summary)
// is in the metrics file with the same value: the summary's keys are derived
// from Summary.JSON, so a figure added to the summary without a metric fails
// here.
func TestMetricsFileCarriesEveryFigureOfTheSummary(t *testing.T) {
	t.Parallel()
	s := Summary{RunID: "r", Status: "partial", ExitCode: ExitPartial, Error: "e", Read: 1000, Counts: outcome.Counts{},
		Requests: 901, Retries: 902, Throttled: 903, Unavailable: 904, RateCuts: 905, Configured: 906, AchievedRate: 907.3,
		FinalRate: 908.1, ThrottleEvents: 909, RatePauses: 910, TransientRetries: 911, BudgetExhausted: 912,
		RateGroup: "g", GroupMembers: 3, GroupShare: 12.5, LatencyP50: 13 * time.Millisecond, LatencyP95: 14 * time.Millisecond,
		Unknown:  []pipeline.UnknownCode{{Field: "device_type", Code: 77, Count: 15}},
		Problems: 916, Files: 17, Duration: 18 * time.Second, Started: time.Unix(1_800_000_000, 0),
		Failures: []pipeline.FailureCode{{Outcome: outcome.Failed, Code: "0100002", Count: 19}, {Outcome: outcome.Rejected, Count: 20}},
		Outages:  21, Paused: 22 * time.Second}
	for i, o := range outcome.All {
		s.Counts[o] = int64(100 + i)
	}
	got := gatherSummary(t, summaryMetrics, s)

	// How each summary figure reads as a metric sample; "" = not a figure
	// (a text, or a label of other samples).
	plain := map[string]string{
		"status": "", "error": "", "rate_group": "",
		"exit_code": "cms_etl_exit_code", "rows_read": "cms_etl_rows_read", "requests": "cms_etl_requests",
		"retries": "cms_etl_retries", "http_429": "cms_etl_http_throttled", "http_503": "cms_etl_http_unavailable",
		"rate_configured": "cms_etl_rate_configured", "rate_achieved": "cms_etl_rate_achieved", "rate_cuts": "cms_etl_rate_cuts",
		"rate_final": "cms_etl_rate_final", "throttle_events": "cms_etl_throttle_events", "rate_pauses": "cms_etl_rate_pauses",
		"retries_transient": "cms_etl_retries_transient", "retry_budget_exhausted": "cms_etl_retry_budget_exhausted",
		"rate_group_members": `cms_etl_rate_group_members{group="g"}`, "field_problems": "cms_etl_field_problems",
		"parquet_files": "cms_etl_parquet_files", "api_outages": "cms_etl_api_outages", "api_paused_s": "cms_etl_api_paused_seconds",
		"duration_s":     "cms_etl_duration_seconds",
		"latency_p50_ms": `cms_etl_latency_seconds{quantile="0.5"}`, "latency_p95_ms": `cms_etl_latency_seconds{quantile="0.95"}`,
	}
	scale := map[string]float64{"latency_p50_ms": 1000, "latency_p95_ms": 1000}
	for key, v := range s.JSON() {
		want := func(sample string, value float64) {
			t.Helper()
			if g, ok := got[sample]; !ok || g != value {
				t.Errorf("summary %s = %v: metric sample %s = %v (present %v)", key, value, sample, g, ok)
			}
		}
		switch key {
		case "outcomes":
			for o, n := range v.(map[string]int64) {
				want(fmt.Sprintf("cms_etl_rows{outcome=%q}", o), float64(n))
			}
		case "failure_codes":
			for o, codes := range v.(map[string]map[string]int64) {
				for code, n := range codes {
					want(fmt.Sprintf("cms_etl_failures{code=%q,outcome=%q}", code, o), float64(n))
				}
			}
		case "unknown_codes":
			for _, u := range v.([]pipeline.UnknownCode) {
				want(fmt.Sprintf("cms_etl_unknown_codes{code=\"%d\",field=%q}", u.Code, u.Field), float64(u.Count))
			}
		default:
			sample, known := plain[key]
			if !known {
				t.Errorf("summary figure %s has no metric: add one to summaryMetrics (and README.md), or say here why not", key)
				continue
			}
			if sample == "" {
				continue
			}
			f, ok := toFloat(v)
			if !ok {
				t.Errorf("summary figure %s = %v (%T) is not a number", key, v, v)
				continue
			}
			if d := scale[key]; d != 0 {
				f /= d
			}
			want(sample, f)
		}
	}
}

// etl discover's metrics file carries its reconciliation, per VDN and
// direction: every figure of a tally (the summary's by_vdn_direction), the
// queueing, the exit code.
func TestDiscoverMetricsFileCarriesTheDiscovery(t *testing.T) {
	t.Parallel()
	tally := discover.Tally{VDN: 25, Inbound: true, Slices: 1, Open: 2, Failed: 3, Pages: 4, Reported: 5, Kept: 6,
		Bisections: 7, Rejected: 8, BothDirections: 9, SamePass: 10}
	s := Summary{ExitCode: ExitPartial, Counts: outcome.Counts{outcome.Loaded: 6}, Requests: 11, Duration: 12 * time.Second,
		Started: time.Unix(1_800_000_000, 0),
		Discovery: &discoverySummary{Tallies: []discover.Tally{tally, {VDN: 25}},
			Enqueued: map[string]queue.Added{"basic": {Inserted: 13, Queued: 14}}}}
	got := gatherSummary(t, discoverMetrics, s)
	for key, v := range tallyJSON(tally) {
		f, _ := toFloat(v)
		sample := fmt.Sprintf(`cms_etl_discover_%s{direction="in",vdn="25"}`, key)
		if g, ok := got[sample]; !ok || g != f {
			t.Errorf("tally %s = %v: metric sample %s = %v (present %v)", key, f, sample, g, ok)
		}
		if _, ok := got[fmt.Sprintf(`cms_etl_discover_%s{direction="out",vdn="25"}`, key)]; !ok {
			t.Errorf("tally %s of the outbound pass has no sample", key)
		}
	}
	for sample, want := range map[string]float64{
		`cms_etl_discover_rows{outcome="loaded"}`:                         6,
		`cms_etl_discover_requests`:                                       11,
		`cms_etl_discover_enqueued{query="basic",state="inserted"}`:       13,
		`cms_etl_discover_enqueued{query="basic",state="already_queued"}`: 14,
		`cms_etl_discover_duration_seconds`:                               12,
		`cms_etl_discover_exit_code`:                                      ExitPartial,
		`cms_etl_discover_last_run_timestamp_seconds`:                     1_800_000_000,
	} {
		if g, ok := got[sample]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", sample, g, ok, want)
		}
	}
	for name := range got {
		if !strings.HasPrefix(name, "cms_etl_discover_") {
			t.Errorf("etl discover's metrics file has %s: its names start with cms_etl_discover_", name)
		}
	}
}

// gatherSummary writes metrics of a finished run's summary with
// WriteToTextfile, as --metrics-file does, and reads the file back.
func gatherSummary(t *testing.T, metrics []summaryMetric, s Summary) map[string]float64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "etl.prom")
	if err := writeSummaryTextfile(path, metrics, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := parseTextfile(t, string(b))
	names := slices.Collect(mapKeys(got))
	sort.Strings(names)
	t.Logf("samples: %s", strings.Join(names, " "))
	return got
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
