package cli

// Benchmarks of issue 13 (make bench-discover; make bench-job runs them
// too): the querycalls requests a discovery uses against the minimum, and
// the rate CDR enrichment achieves at --rate 300. The simulator runs on
// the real clock: the day discovered is yesterday.

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

// benchSchedule starts a TLS simulator with VDNs 25 and 26 of call center 1
// at perMinute calls a minute each, half inbound; edit adjusts it.
func benchSchedule(b *testing.B, perMinute float64, edit func(*cmssim.Config, *cmssim.CallsConfig)) (*cmssim.Server, string) {
	b.Helper()
	calls := cmssim.DefaultCalls()
	calls.VDNs = []cmssim.VDN{{CCID: 1, VDN: 25}, {CCID: 1, VDN: 26}}
	calls.CallsPerMinute = perMinute
	calls.InboundShare = 0.5
	calls.Now = testNow // etl's too (Env.Now): yesterday is whole whenever the benchmark runs
	cfg := cmssim.Config{TLS: true, Calls: &calls}
	if edit != nil {
		edit(&cfg, &calls)
	}
	return benchSim(b, cfg)
}

// benchDiscoverArgs is an etl discover of yesterday against sim.
func benchDiscoverArgs(sim *cmssim.Server, sk string, more ...string) []string {
	return append([]string{"discover", "--cc-id", "1", "--vdn", "25,26", "--api-url", sim.URL(), "--ak", testCreds.AK,
		"--sk-file", sk, "--ca-file", sim.CAFile(), "--progress", "none", "--log-format", "json"}, more...)
}

// simListed counts the calls sim lists for VDNs 25 and 26 in [from, to).
func simListed(sim *cmssim.Server, from, to time.Time) map[string]cmssim.Call {
	return listed(&harness{sim: sim}, from, to)
}

// BenchmarkDiscoveryPages discovers a simulated day (yesterday) of two VDNs
// at 10 calls a minute each, half inbound (about 300 calls per hour and
// direction, three pages per slice), into Parquet without a rate limit:
// with healthy pages, and with 30% of multi-page answers short and 10%
// with a drifting count. It reports the querycalls requests the simulator
// answered against the minimum (one page per 100 calls, at least one, per
// one-hour slice, VDN and direction). Targets: every call listed by the
// simulator is discovered, once; with healthy pages the requests equal the
// minimum.
func BenchmarkDiscoveryPages(b *testing.B) {
	requireFullRun(b)
	for _, tc := range []struct {
		name         string
		short, drift float64
	}{{"healthy", 0, 0}, {"short-pages-30%-drift-10%", 0.3, 0.1}} {
		b.Run(tc.name, func(b *testing.B) {
			sim, sk := benchSchedule(b, 10, func(_ *cmssim.Config, c *cmssim.CallsConfig) {
				c.ShortPageShare, c.CountDriftShare = tc.short, tc.drift
			})
			dir := b.TempDir()
			var pages, minimum int64
			var calls int
			var bisections float64
			iter := 0
			for b.Loop() {
				iter++
				day := yesterday()
				want := simListed(sim, day, day.Add(24*time.Hour))
				before := sim.Stats().ByEndpoint[cmssim.EndpointQueryCalls]
				var stderr bytes.Buffer
				code := Main(b.Context(), benchDiscoverArgs(sim, sk, "--output", "parquet:"+filepath.Join(dir, strconv.Itoa(iter)), "--rate", "0"),
					Env{Stdout: io.Discard, Stderr: &stderr, Now: testNow})
				o := summaryOf(b, code, stderr.String())
				if o.code != ExitOK || o.outcome("loaded") != int64(len(want)) {
					b.Fatalf("exit %d, loaded %d; the simulator lists %d calls", o.code, o.outcome("loaded"), len(want))
				}
				pages = sim.Stats().ByEndpoint[cmssim.EndpointQueryCalls] - before
				minimum, calls = int64(minimumPages(want, day, day.Add(24*time.Hour))), len(want)
				d, _ := o.summary["discovery"].(map[string]any)
				total, _ := d["total"].(map[string]any)
				bisections, _ = total["bisections"].(float64)
			}
			b.ReportMetric(float64(pages), "requests")
			b.ReportMetric(float64(minimum), "min_requests")
			b.ReportMetric(float64(pages)/float64(minimum), "requests/min")
			b.Logf("%d calls: %d querycalls requests for a minimum of %d (%.2fx), %v bisections; load %s",
				calls, pages, minimum, float64(pages)/float64(minimum), bisections, loadAverage())
			if tc.short == 0 && tc.drift == 0 && pages != minimum {
				b.Errorf("healthy pages: %d requests, want the minimum %d", pages, minimum)
			}
		})
	}
}

// BenchmarkCDREnrichment queues the CDRs of a simulated day (yesterday, two
// VDNs at 3 calls a minute each: about 8,600 calls) with etl discover
// --enqueue cdr, then fetches them with etl run --input queue --query cdr
// --rate 300 (burst 1, the default concurrency 8) into PostgreSQL, against a TLS
// simulator answering after 5 ms. Targets: the simulator sees at least 95%
// of 300 requests a second, no wall-clock second more than 300 + burst,
// and every call's CDR is loaded.
func BenchmarkCDREnrichment(b *testing.B) {
	requireFullRun(b)
	const (
		rate  = 300.0
		burst = 1
	)
	url := pgtest.ConnString(b)
	var stdout, stderr bytes.Buffer
	if code := Main(b.Context(), []string{"migrate", "--database-url", url}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		b.Fatalf("etl migrate exit %d: %s", code, stderr.String())
	}
	db, err := pgxpool.New(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	sim, sk := benchSchedule(b, 3, func(cfg *cmssim.Config, _ *cmssim.CallsConfig) { cfg.Latency = 5 * time.Millisecond })
	stderr.Reset()
	code := Main(b.Context(), benchDiscoverArgs(sim, sk, "--output", "postgres", "--database-url", url, "--enqueue", "cdr", "--rate", "0"),
		Env{Stdout: io.Discard, Stderr: &stderr, Now: testNow})
	queued := summaryOf(b, code, stderr.String()).outcome("loaded")
	if code != ExitOK || queued < 8000 {
		b.Fatalf("discover exit %d, %d calls queued:\n%s", code, queued, tail(stderr.String(), 3000))
	}
	var simRate float64
	var o runOutput
	var peak int64
	for b.Loop() {
		if _, err := db.Exec(b.Context(), "UPDATE cms.call_queue SET status = 'pending', attempts = 0, available_at = now() WHERE query = 'cdr'"); err != nil {
			b.Fatal(err)
		}
		peakBefore := sim.Stats().PeakPerSecond
		s := newRequestSampler(sim)
		var stderr bytes.Buffer
		code := Main(b.Context(), []string{"run", "--input", "queue", "--query", "cdr", "--output", "postgres", "--database-url", url,
			"--api-url", sim.URL(), "--ak", testCreds.AK, "--sk-file", sk, "--ca-file", sim.CAFile(), "--progress", "none", "--log-format", "json",
			"--rate", fmt.Sprint(rate), "--burst", strconv.Itoa(burst)}, Env{Stdout: io.Discard, Stderr: &stderr})
		s.stop()
		o = summaryOf(b, code, stderr.String())
		requireAllLoaded(b, o, int(queued))
		simRate = s.rate()
		peak = max(peakBefore, sim.Stats().PeakPerSecond)
	}
	b.ReportMetric(simRate, "sim_req/s")
	b.ReportMetric(simRate/rate*100, "achieved_%")
	b.ReportMetric(float64(peak), "sim_peak_req/1s")
	b.Logf("%d CDRs: simulator saw %.1f req/s (%.1f%% of %v), busiest second %d; summary: achieved %.1f/s, p50 %vms p95 %vms; load %s",
		queued, simRate, simRate/rate*100, rate, peak, o.num("rate_achieved"), o.num("latency_p50_ms"), o.num("latency_p95_ms"), loadAverage())
	if simRate < 0.95*rate {
		b.Errorf("simulator saw %.1f req/s, want at least %.0f (95%% of %v)", simRate, 0.95*rate, rate)
	}
	if peak > int64(rate)+burst {
		b.Errorf("simulator saw %d requests in one second, want at most %d (rate + burst)", peak, int64(rate)+burst)
	}
}
