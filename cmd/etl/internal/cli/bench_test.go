package cli

// Benchmarks of whole etl runs (issue 3): rate accuracy, CSV-to-Parquet
// throughput against a bare HTTP loop, and the etl process's peak RSS. One
// iteration is one full run, so run them with -benchtime=1x:
//
//	go test -run='^$' -bench=. -benchtime=1x -timeout 60m ./cmd/etl/internal/cli/
//
// The runs of minutes (throughput, memory) skip themselves unless the run was
// asked for on purpose: -benchtime=1x, or a -bench pattern that is not a
// catch-all such as '.', so `go test -bench=. ./...` for the micro-benchmarks
// of other packages does not start them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
	"github.com/cmsetl/cms-etl/load/parquet"
)

// benchKey is the i-th key of the generated inputs. Call times are 2.6 s
// apart, so a million IDs cover 30 days (about 33,000 calls a day, in call
// order as an export would list them) and every commit touches one or two
// call_date partitions. The time prefix alone makes keys unique; the suffix
// keeps callId within its 20 characters.
func benchKey(i int) extract.Key {
	const start = 1763856000000 // 2025-11-23T00:00:00Z in ms
	return extract.Key{CCID: 1, VDN: 1 + i%3, CallID: strconv.FormatInt(start+int64(i)*2600, 10) + "-" + strconv.Itoa(1000+i%9000)}
}

// writeBenchCSV writes n keys (benchKey(0..n-1)) to dir/name.
func writeBenchCSV(tb testing.TB, dir, name string, n int) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	w.WriteString("ccId,vdn,callId\n")
	for i := range n {
		k := benchKey(i)
		fmt.Fprintf(w, "%d,%d,%s\n", k.CCID, k.VDN, k.CallID)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// writeBenchCSVRejects is writeBenchCSV with its last rejects rows' call IDs
// made invalid (over 20 characters), so they are rejected.
func writeBenchCSVRejects(tb testing.TB, dir, name string, n, rejects int) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	w.WriteString("ccId,vdn,callId\n")
	for i := range n {
		k := benchKey(i)
		if i >= n-rejects {
			k.CallID += "0000000000" // 28+ characters: rejected
		}
		fmt.Fprintf(w, "%d,%d,%s\n", k.CCID, k.VDN, k.CallID)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// benchSim starts a simulator (by default with healthy answers and the test
// credentials) and writes the SK file the etl reads.
func benchSim(tb testing.TB, cfg cmssim.Config) (sim *cmssim.Server, skFile string) {
	tb.Helper()
	if cfg.Credentials == (authv2.Credentials{}) {
		cfg.Credentials = testCreds
	}
	if cfg.Seed == 0 {
		cfg.Seed = 7
	}
	sim, err := cmssim.Start(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("start simulator: %v", err)
	}
	tb.Cleanup(func() { sim.Close() })
	skFile = filepath.Join(tb.TempDir(), "sk")
	if err := os.WriteFile(skFile, []byte(testCreds.SK+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return sim, skFile
}

// benchArgs is an etl run command line against sim.
func benchArgs(sim *cmssim.Server, skFile, in, out string, more ...string) []string {
	args := []string{"run", "--input", "csv:" + in, "--output", "parquet:" + out,
		"--api-url", sim.URL(), "--ak", testCreds.AK, "--sk-file", skFile,
		"--progress", "none", "--log-format", "json"}
	if ca := sim.CAFile(); ca != "" {
		args = append(args, "--ca-file", ca)
	}
	return append(args, more...)
}

// summaryOf parses the run_summary event out of the etl's stderr.
func summaryOf(tb testing.TB, code int, stderr string) runOutput {
	tb.Helper()
	out := parseRun(tb, code, stderr)
	if out.summary == nil {
		tb.Fatalf("no run_summary event (exit %d); stderr:\n%s", code, tail(stderr, 4000))
	}
	return out
}

// requireAllLoaded fails unless the run exited 0 with every one of n rows loaded.
func requireAllLoaded(tb testing.TB, o runOutput, n int) {
	tb.Helper()
	if o.code != ExitOK || o.outcome("loaded") != int64(n) || o.num("rows_read") != float64(n) {
		tb.Fatalf("exit %d, rows read %v, outcomes %v: want exit 0 and all %d rows loaded; stderr:\n%s",
			o.code, o.num("rows_read"), o.summary["outcomes"], n, tail(o.stderr, 4000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// requireFullRun skips a benchmark of minutes unless it was asked for on
// purpose (see the package comment of this file).
func requireFullRun(b *testing.B) {
	b.Helper()
	if f := flag.Lookup("test.benchtime"); f != nil && f.Value.String() == "1x" {
		return
	}
	if f := flag.Lookup("test.bench"); f != nil {
		top, _, _ := strings.Cut(f.Value.String(), "/")
		if re, err := regexp.Compile(top); err == nil && !re.MatchString("BenchmarkNoSuchBenchmarkName") {
			return // the pattern names benchmarks rather than matching everything
		}
	}
	b.Skip("one iteration is a full run of minutes: run with -benchtime=1x or name it in -bench")
}

// BenchmarkRateAccuracy runs 5,000 IDs at --rate 500 (burst 1, concurrency
// 32) against a TLS simulator answering after 20 ms. Targets: the achieved
// rate is at least 97% of 500, and no wall-clock second of the simulator's
// counters saw more than 500 + burst requests.
func BenchmarkRateAccuracy(b *testing.B) {
	const (
		n     = 5000
		rate  = 500.0
		burst = 1
		conc  = 32
	)
	sim, sk := benchSim(b, cmssim.Config{TLS: true, Latency: 20 * time.Millisecond})
	dir := b.TempDir()
	in := writeBenchCSV(b, dir, "calls.csv", n)
	var achieved, simRate, slidingPeak float64
	iter := 0
	for b.Loop() {
		iter++
		s := newRequestSampler(sim)
		out := filepath.Join(dir, "lake"+strconv.Itoa(iter))
		var stderr bytes.Buffer
		code := Main(b.Context(), benchArgs(sim, sk, in, out, "--rate", fmt.Sprint(rate), "--burst", strconv.Itoa(burst),
			"--concurrency", strconv.Itoa(conc)), Env{Stdout: io.Discard, Stderr: &stderr})
		s.stop()
		o := summaryOf(b, code, stderr.String())
		requireAllLoaded(b, o, n)
		achieved = o.num("requests") / o.num("duration_s")
		simRate, slidingPeak = s.rate(), s.slidingPeak()
	}
	peak := sim.Stats().PeakPerSecond
	b.ReportMetric(achieved, "achieved_req/s")
	b.ReportMetric(simRate, "sim_req/s")
	b.ReportMetric(float64(peak), "sim_peak_req/1s")
	b.ReportMetric(slidingPeak, "sliding_peak_req/s")
	b.ReportMetric(achieved/rate*100, "achieved_%")
	b.Logf("achieved %.1f req/s (summary), simulator saw %.1f req/s, peak %d in one wall-clock second, sliding peak %.1f req/s",
		achieved, simRate, peak, slidingPeak)
	if achieved < 0.97*rate || simRate < 0.97*rate {
		b.Errorf("achieved %.1f/s (simulator %.1f/s), want at least %.0f/s (97%% of %v)", achieved, simRate, 0.97*rate, rate)
	}
	if peak > int64(rate)+burst {
		b.Errorf("simulator saw %d requests in one second, want at most %d (rate + burst)", peak, int64(rate)+burst)
	}
}

// requestSampler polls the simulator's request counter every 5 ms, to
// measure the rate the server saw between its first and last request and the
// busiest sliding second.
type requestSampler struct {
	done    chan struct{}
	stopped sync.WaitGroup
	base    int64
	times   []time.Time
	counts  []int64
}

func newRequestSampler(sim *cmssim.Server) *requestSampler {
	s := &requestSampler{done: make(chan struct{}), base: sim.Stats().Requests}
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			n := sim.Stats().Requests - s.base
			if len(s.counts) == 0 || n != s.counts[len(s.counts)-1] {
				s.times, s.counts = append(s.times, time.Now()), append(s.counts, n)
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *requestSampler) stop() { close(s.done); s.stopped.Wait() }

// rate is requests per second between the first and the last sample that
// saw the counter move.
func (s *requestSampler) rate() float64 {
	if len(s.counts) < 2 {
		return 0
	}
	first, last := 0, len(s.counts)-1
	if s.counts[0] == 0 {
		first = 1
	}
	if last <= first {
		return 0
	}
	return float64(s.counts[last]-s.counts[first]) / s.times[last].Sub(s.times[first]).Seconds()
}

// slidingPeak is the highest rate over any window of at least one second
// between two samples (the shortest such window ending at each sample), in
// requests per second: a sliding counterpart of the simulator's per-second
// peak, which counts whole wall-clock seconds.
func (s *requestSampler) slidingPeak() float64 {
	var peak float64
	j := 0
	for i := range s.counts {
		for j+1 < i && s.times[i].Sub(s.times[j+1]) >= time.Second {
			j++
		}
		if d := s.times[i].Sub(s.times[j]); d >= time.Second {
			peak = max(peak, float64(s.counts[i]-s.counts[j])/d.Seconds())
		}
	}
	return peak
}

// BenchmarkThroughput measures CSV-to-Parquet rows per second for 200,000
// IDs with no rate limit against a zero-latency plain-HTTP simulator in this
// process, next to a bare Go HTTP loop against the same simulator. The bare
// loop is tried at concurrency 4, 8 and 16; the job runs at the best of them,
// and the bare loop runs once more at that concurrency after the job, so a
// machine busy with something else during one of them does not flatter the
// ratio: the reference is the faster of the two bare runs. Rows per second of
// the job are over the whole Main call (start-up, reading, querying, writing,
// the last commit). CPU per row is this process's user+system time (client,
// simulator and GC together) divided by the rows.
// Target: the job reaches at least 70% of the bare loop's rows per second.
func BenchmarkThroughput(b *testing.B) {
	requireFullRun(b)
	const n = 200_000
	sim, sk := benchSim(b, cmssim.Config{TLS: false})
	dir := b.TempDir()
	in := writeBenchCSV(b, dir, "calls.csv", n)
	keys := make([]extract.Key, n)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	var (
		bareAt         = map[int]phase{}
		bare, job      phase
		bestConc       int
		summaryRate    float64
		bareRate, jobR float64
	)
	iter := 0
	for b.Loop() {
		iter++
		bare = phase{}
		for _, c := range []int{4, 8, 16} {
			p := measure(b, "bare", n, func(context.Context) { bareLoop(b, sim.URL(), keys, c) })
			bareAt[c] = p
			if p.rowsPerSec() > bare.rowsPerSec() {
				bare, bestConc = p, c
			}
		}
		out := filepath.Join(dir, "lake"+strconv.Itoa(iter))
		var stderr bytes.Buffer
		var code int
		job = measure(b, "job", n, func(ctx context.Context) {
			code = Main(ctx, benchArgs(sim, sk, in, out, "--rate", "0", "--concurrency", strconv.Itoa(bestConc)),
				Env{Stdout: io.Discard, Stderr: &stderr})
		})
		o := summaryOf(b, code, stderr.String())
		requireAllLoaded(b, o, n)
		summaryRate = o.num("rate_achieved")
		if again := measure(b, "bare", n, func(context.Context) { bareLoop(b, sim.URL(), keys, bestConc) }); again.rowsPerSec() > bare.rowsPerSec() {
			bare = again
		}
		b.StopTimer()
		set, st, err := parquet.CommittedKeys(b.Context(), out, nil)
		if err != nil || st.Rows != n {
			b.Fatalf("parquet output holds %d rows (%v), want %d", st.Rows, err, n)
		}
		set.Close()
		b.StartTimer()
	}
	for c, p := range bareAt {
		b.ReportMetric(p.rowsPerSec(), fmt.Sprintf("bare_c%d_rows/s", c))
	}
	bareRate, jobR = bare.rowsPerSec(), job.rowsPerSec()
	b.ReportMetric(float64(bestConc), "concurrency")
	b.ReportMetric(bareRate, "bare_rows/s")
	b.ReportMetric(jobR, "job_rows/s")
	b.ReportMetric(summaryRate, "job_summary_req/s")
	b.ReportMetric(jobR/bareRate, "job/bare")
	b.ReportMetric(bare.cpuPerRow(), "bare_cpu_us/row")
	b.ReportMetric(job.cpuPerRow(), "job_cpu_us/row")
	b.Logf("bare loop by concurrency %v; job at concurrency %d: %s (summary %.0f req/s); bare reference %s; job/bare %.0f%%",
		bareAt, bestConc, job, summaryRate, bare, 100*jobR/bareRate)
	if jobR < 0.7*bareRate {
		b.Errorf("job %.0f rows/s is %.0f%% of the bare loop's %.0f rows/s at concurrency %d, want at least 70%%",
			jobR, 100*jobR/bareRate, bareRate, bestConc)
	}
}

// phase is one measured run: its wall time and this process's CPU time.
type phase struct {
	rows      int
	wall, cpu time.Duration
}

func (p phase) rowsPerSec() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(p.rows) / p.wall.Seconds()
}

func (p phase) cpuPerRow() float64 { return float64(p.cpu.Microseconds()) / float64(p.rows) }

func (p phase) String() string {
	return fmt.Sprintf("%.0f rows/s, %.1f us CPU/row", p.rowsPerSec(), p.cpuPerRow())
}

// measure runs f for rows rows under the pprof label phase=label, after a GC
// so no earlier run's garbage is charged to it. The labels split a
// -cpuprofile into the bare loop, the job and the (unlabelled) simulator and
// GC workers: go tool pprof -tagfocus=phase=job.
func measure(b *testing.B, label string, rows int, f func(context.Context)) phase {
	b.Helper()
	runtime.GC()
	cpu0 := processCPU(b)
	start := time.Now()
	pprof.Do(b.Context(), pprof.Labels("phase", label), f)
	return phase{rows: rows, wall: time.Since(start), cpu: processCPU(b) - cpu0}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bareLoop is the reference client: conc goroutines take the next key from
// a shared counter and, for each, build the same JSON body the etl sends,
// sign it with authv2.Sign (millisecond timestamp, signed headers
// content-length;content-type;host, like the etl's defaults), POST it with a
// plain http.Client whose transport keeps conc connections to the host, check
// for HTTP 200, and read the body to io.Discard without parsing it. No rate
// limiter, no retries, no output.
func bareLoop(b *testing.B, baseURL string, keys []extract.Key, conc int) {
	b.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		b.Fatal(err)
	}
	target := baseURL + cms.QueryPath
	signed := authv2.SignedHeaders(authv2.HeadersDefault)
	const ct = "application/json;charset=UTF-8"
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx := b.Context()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
		failed  atomic.Bool
	)
	fail := func(err error) { errOnce.Do(func() { failure = err; failed.Store(true) }) }
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(keys)) || failed.Load() {
					return
				}
				k := keys[i]
				body := []byte(fmt.Sprintf(`{"ccId":%d,"vdn":%d,"callId":"%s"}`, k.CCID, k.VDN, k.CallID))
				auth, err := authv2.Sign(testCreds, time.Now().UTC().Format(authv2.LayoutMillis), signed, authv2.Request{
					Method: http.MethodPost, Path: cms.QueryPath,
					Headers: map[string]string{"content-length": strconv.Itoa(len(body)), "content-type": ct, "host": u.Host},
					Body:    body,
				})
				if err != nil {
					fail(err)
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
				if err != nil {
					fail(err)
					return
				}
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Authorization", auth)
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("bare loop: status %d, read %v", resp.StatusCode, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		b.Fatalf("bare loop at concurrency %d: %v", conc, failure)
	}
}

// BenchmarkMemory measures the peak RSS of the etl process alone for 100,000
// and 1,000,000 IDs: the etl runs as a subprocess (this test binary with
// ETL_TEST_BE_MAIN=1, started through a launcher, see launchEnv; default
// concurrency 8, no rate limit) against cmssim with TLS, itself a subprocess
// built from ./cmd/cmssim, as in production where the two never share a
// process or a GC; the peak RSS is the kernel's ru_maxrss.
// Targets: at most 200 MB (10^6 bytes) for 1M IDs, and at most 1.3 times the
// peak for 100k.
func BenchmarkMemory(b *testing.B) {
	requireFullRun(b)
	sim := startSimProcess(b)
	dir := b.TempDir()
	sk := filepath.Join(dir, "sk")
	if err := os.WriteFile(sk, []byte(testCreds.SK+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	sizes := []int{100_000, 1_000_000, 1_000_000}
	inputs := make([]string, len(sizes))
	for i, n := range sizes[:2] {
		inputs[i] = writeBenchCSV(b, dir, fmt.Sprintf("calls-%d.csv", n), n)
	}
	// The third input is the second with its last tenth rejected (call IDs
	// over 20 characters): failure records must not pile up between commits.
	inputs[2] = writeBenchCSVRejects(b, dir, "calls-1M-rejects.csv", sizes[2], sizes[2]/10)
	peaks := make([]float64, len(sizes))
	secs := make([]float64, len(sizes))
	cpus := make([]float64, len(sizes))
	iter := 0
	for b.Loop() {
		iter++
		for i, n := range sizes {
			out := filepath.Join(dir, fmt.Sprintf("lake-%d-%d", i, iter))
			args := []string{"run", "--input", "csv:" + inputs[i], "--output", "parquet:" + out,
				"--api-url", sim.url, "--ak", testCreds.AK, "--sk-file", sk, "--ca-file", sim.caFile,
				"--progress", "none", "--log-format", "json", "--rate", "0"}
			rejected := 0
			if i == 2 {
				rejected = n / 10
			}
			peaks[i], secs[i], cpus[i] = childPeakRSS(b, args, n, rejected)
		}
	}
	b.ReportMetric(peaks[0], "peak_MB_100k")
	b.ReportMetric(peaks[1], "peak_MB_1M")
	b.ReportMetric(peaks[1]/peaks[0], "ratio_1M/100k")
	b.ReportMetric(peaks[2], "peak_MB_1M_rejects")
	b.ReportMetric(peaks[2]/peaks[0], "ratio_1M_rejects/100k")
	b.ReportMetric(secs[0], "wall_s_100k")
	b.ReportMetric(secs[1], "wall_s_1M")
	b.ReportMetric(cpus[1], "etl_cpu_s_1M")
	set := digestSetMB(b, sizes[1])
	b.ReportMetric(set, "dedup_set_MB_1M")
	b.Logf("peak RSS %.1f MB for 100k IDs (%.1f s, %.1f s CPU), %.1f MB for 1M IDs (%.1f s, %.1f s CPU), ratio %.2f; "+
		"the de-duplication set of 1M IDs holds %.1f MB outside the Go heap",
		peaks[0], secs[0], cpus[0], peaks[1], secs[1], cpus[1], peaks[1]/peaks[0], set)
	b.Logf("with the last 100,000 of 1M rows rejected: peak RSS %.1f MB (%.1f s), ratio %.2f", peaks[2], secs[2], peaks[2]/peaks[0])
	for i, label := range []string{"", "", " with the last tenth rejected"} {
		if i == 0 {
			continue
		}
		if peaks[i] > 200 {
			b.Errorf("peak RSS for 1M IDs%s is %.1f MB, want at most 200 MB", label, peaks[i])
		}
		if peaks[i] > 1.3*peaks[0] {
			b.Errorf("peak RSS for 1M IDs%s is %.2f times the peak for 100k (%.1f MB vs %.1f MB), want at most 1.3",
				label, peaks[i]/peaks[0], peaks[i], peaks[0])
		}
	}
}

// simProcess is a running cmssim subprocess.
type simProcess struct{ url, caFile string }

// startSimProcess builds ./cmd/cmssim into a temporary directory and starts
// it with TLS on a free loopback port and the test credentials (the SK
// through the environment); cleanup stops it with SIGTERM.
func startSimProcess(b *testing.B) simProcess {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "cmssim")
	if out, err := exec.CommandContext(b.Context(), "go", "build", "-o", bin, "github.com/cmsetl/cms-etl/cmd/cmssim").CombinedOutput(); err != nil {
		b.Fatalf("build cmssim: %v\n%s", err, out)
	}
	addrFile, caFile := filepath.Join(dir, "addr"), filepath.Join(dir, "ca.pem")
	cmd := exec.CommandContext(b.Context(), bin, "--addr", "127.0.0.1:0", "--addr-file", addrFile,
		"--cert-file", caFile, "--ak", testCreds.AK, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "CMS_SK="+testCreds.SK)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start cmssim: %v", err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if u, err := os.ReadFile(addrFile); err == nil {
			return simProcess{url: strings.TrimSpace(string(u)), caFile: caFile}
		}
		if time.Now().After(deadline) {
			b.Fatalf("cmssim did not write %s within 30 s; stderr:\n%s", addrFile, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launchEnv makes this test binary a launcher: it runs itself as the etl
// (beMainEnv) with the same arguments, and writes the etl's rusage as JSON to
// the file named by the variable. Linux's ru_maxrss of a process started by
// exec includes the high-water RSS of the process it was forked from (its
// memory is shared until exec, and exec keeps the old maximum), so an etl
// forked straight from the benchmark process would report at least the
// benchmark's own RSS (measured: 160 MB for a 100k run after
// BenchmarkThroughput, against 123 MB alone). Forked from this small
// launcher instead, its ru_maxrss is its own.
const launchEnv = "ETL_BENCH_RUSAGE_FILE"

// launchResult is what the launcher writes.
type launchResult struct {
	Exit     int   `json:"exit"`
	MaxRSSKB int64 `json:"maxrss_kb"` // ru_maxrss: KiB on Linux
	CPUNanos int64 `json:"cpu_ns"`    // user + system
}

func init() {
	path := os.Getenv(launchEnv)
	if path == "" || os.Getenv(beMainEnv) == "1" {
		return
	}
	os.Exit(launch(path))
}

func launch(path string) int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if _, exited := errors.AsType[*exec.ExitError](err); err != nil && !exited {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		return 125
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		fmt.Fprintln(os.Stderr, "launcher: no rusage")
		return 125
	}
	b, _ := json.Marshal(launchResult{Exit: cmd.ProcessState.ExitCode(), MaxRSSKB: ru.Maxrss, CPUNanos: ru.Utime.Nano() + ru.Stime.Nano()})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		return 125
	}
	return cmd.ProcessState.ExitCode()
}

// childPeakRSS runs the etl as a subprocess through the launcher, checks
// that all n rows loaded and returns its peak RSS in MB (10^6 bytes), its
// wall time and its CPU time (user+system) in seconds.
func childPeakRSS(b *testing.B, args []string, n, rejected int) (peakMB, wallSecs, cpuSecs float64) {
	b.Helper()
	resFile := filepath.Join(b.TempDir(), "rusage.json")
	cmd := exec.CommandContext(b.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), launchEnv+"="+resFile)
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	start := time.Now()
	err := cmd.Run()
	wallSecs = time.Since(start).Seconds()
	if _, exited := errors.AsType[*exec.ExitError](err); err != nil && !exited {
		b.Fatalf("run etl: %v", err)
	}
	raw, err := os.ReadFile(resFile)
	if err != nil {
		b.Fatalf("launcher wrote no rusage (exit %d): %v; stderr:\n%s", cmd.ProcessState.ExitCode(), err, tail(stderr.String(), 4000))
	}
	var res launchResult
	if err := json.Unmarshal(raw, &res); err != nil {
		b.Fatalf("launcher rusage %s: %v", raw, err)
	}
	o := summaryOf(b, res.Exit, stderr.String())
	if rejected == 0 {
		requireAllLoaded(b, o, n)
	} else if o.code != ExitPartial || o.outcome("loaded") != int64(n-rejected) || o.outcome("rejected") != int64(rejected) {
		b.Fatalf("exit %d, outcomes %v: want exit 3, %d loaded and %d rejected", o.code, o.summary["outcomes"], n-rejected, rejected)
	}
	return float64(res.MaxRSSKB) * 1024 / 1e6, wallSecs, time.Duration(res.CPUNanos).Seconds()
}

// digestSetMB is the size in MB of the extract.DigestSet holding n digests,
// the set job.feed builds to de-duplicate the input.
func digestSetMB(b *testing.B, n int) float64 {
	b.Helper()
	seen, err := extract.NewDigestSet(0)
	if err != nil {
		b.Fatal(err)
	}
	defer seen.Close()
	for i := range n {
		if _, err := seen.Add(benchKey(i).Digest()); err != nil {
			b.Fatal(err)
		}
	}
	return float64(seen.MemoryBytes()) / 1e6
}

// Rate control (issue 8). Each benchmark is one run (or two) of tens of
// seconds against a TLS simulator in this process, measured by the
// simulator's own counters.

// faultKinds are the simulator's transient faults in the rate benchmark:
// every kind but "hang", which holds a worker for --request-timeout and so
// measures the concurrency a run needs rather than its rate control.
var faultKinds = []string{cmssim.FaultServerError, cmssim.FaultUnavailable, cmssim.FaultDrop, cmssim.FaultTruncated,
	cmssim.FaultGenericFailure, cmssim.FaultUnknownError}

// BenchmarkRateUnderFaults runs 9,000 IDs at --rate 300 (burst 1,
// concurrency 16) against a simulator answering after 5 ms where 10% of the
// calls fail once on their first attempt, spread over every fault kind but
// hang (a sixth of them HTTP 503 without Retry-After). Targets: the rate the
// simulator saw is at least 95% of 300, and no wall-clock second carried
// more than 300 + burst requests. Concurrency 16 rather than 8: a retry
// holds its worker through the backoff (up to 250 ms), and at 8 a busy
// machine makes the workers, not the limiter, what holds the run back
// (93.8-96.7% at 8; see README).
func BenchmarkRateUnderFaults(b *testing.B) {
	requireFullRun(b)
	const (
		n     = 9000
		rate  = 300.0
		burst = 1
	)
	sim, sk := benchSim(b, cmssim.Config{TLS: true, Latency: 5 * time.Millisecond, TransientShare: 0.1,
		TransientAttempts: 1, TransientKinds: faultKinds})
	dir := b.TempDir()
	in := writeBenchCSV(b, dir, "calls.csv", n)
	var simRate float64
	var o runOutput
	iter := 0
	for b.Loop() {
		iter++
		s := newRequestSampler(sim)
		var stderr bytes.Buffer
		code := Main(b.Context(), benchArgs(sim, sk, in, filepath.Join(dir, "lake"+strconv.Itoa(iter)), "--rate", fmt.Sprint(rate),
			"--burst", strconv.Itoa(burst), "--concurrency", "16"), Env{Stdout: io.Discard, Stderr: &stderr})
		s.stop()
		o = summaryOf(b, code, stderr.String())
		requireAllLoaded(b, o, n)
		simRate = s.rate()
	}
	st := sim.Stats()
	faults := st.ByOutcome[cmssim.OutcomeServerError] + st.ByOutcome[cmssim.OutcomeUnavailable] + st.ByOutcome[cmssim.OutcomeDrop] +
		st.ByOutcome[cmssim.OutcomeTruncated] + st.ByOutcome[cmssim.OutcomeGenericFailure] + st.ByOutcome[cmssim.OutcomeUnknownError]
	b.ReportMetric(simRate, "sim_req/s")
	b.ReportMetric(simRate/rate*100, "achieved_%")
	b.ReportMetric(float64(st.PeakPerSecond), "sim_peak_req/1s")
	b.ReportMetric(o.num("rate_cuts"), "rate_cuts")
	b.Logf("simulator saw %.1f req/s (%.1f%% of %v), busiest second %d, %d faults answered (503 without Retry-After: %d); "+
		"summary: achieved %.1f/s, final rate %v, throttle events %v, cuts %v, pauses %v, retries after faults %v, budget refusals %v; load %s",
		simRate, simRate/rate*100, rate, st.PeakPerSecond, faults, st.ByOutcome[cmssim.OutcomeUnavailable],
		o.num("rate_achieved"), o.num("rate_final"), o.num("throttle_events"), o.num("rate_cuts"), o.num("rate_pauses"),
		o.num("retries_transient"), o.num("retry_budget_exhausted"), loadAverage())
	if simRate < 0.95*rate {
		b.Errorf("simulator saw %.1f req/s, want at least %.0f (95%% of %v)", simRate, 0.95*rate, rate)
	}
	if st.PeakPerSecond > int64(rate)+burst {
		b.Errorf("simulator saw %d requests in one second, want at most %d (rate + burst)", st.PeakPerSecond, int64(rate)+burst)
	}
}

// BenchmarkRateAgainstServerLimit runs 6,000 IDs at --rate 300 (burst 1,
// concurrency 8) against a simulator that serves 150 requests a second and
// answers the rest 429 with Retry-After: 1, after 5 ms. Its token bucket
// holds a second's worth of requests (the simulator's default), or a tenth
// of a second's. Targets, with the default bucket: after the first 5 s,
// the simulator accepts on average at least 85% of 150 a second; 429s are
// at most 10% of the requests; every row loads. With the small bucket the
// figures are reported, not asserted: each Retry-After pauses the whole pool
// for a second, as the server asks, and a bucket that cannot hold that
// second's tokens loses them (see README).
func BenchmarkRateAgainstServerLimit(b *testing.B) {
	requireFullRun(b)
	const server = 150.0
	for _, tc := range []struct {
		name   string
		burst  int
		assert bool
	}{{"server-burst-1s", 150, true}, {"server-burst-0.1s", 15, false}} {
		b.Run(tc.name, func(b *testing.B) { rateAgainstServerLimit(b, server, tc.burst, tc.assert) })
	}
}

func rateAgainstServerLimit(b *testing.B, server float64, serverBurst int, assert bool) {
	const (
		n    = 6000
		rate = 300.0
	)
	sim, sk := benchSim(b, cmssim.Config{TLS: true, Latency: 5 * time.Millisecond, RateLimit: server, RateBurst: serverBurst,
		RetryAfter: time.Second, TrackSeconds: true})
	dir := b.TempDir()
	in := writeBenchCSV(b, dir, "calls.csv", n)
	var o runOutput
	var secs []cmssim.Second
	iter := 0
	for b.Loop() {
		iter++
		before := len(sim.Seconds())
		var stderr bytes.Buffer
		code := Main(b.Context(), benchArgs(sim, sk, in, filepath.Join(dir, "lake"+strconv.Itoa(iter)), "--rate", fmt.Sprint(rate),
			"--concurrency", "8"), Env{Stdout: io.Discard, Stderr: &stderr})
		o = summaryOf(b, code, stderr.String())
		requireAllLoaded(b, o, n)
		secs = sim.Seconds()[before:]
	}
	var requests, throttled int64
	for _, s := range secs {
		requests, throttled = requests+s.Requests, throttled+s.Throttled
	}
	// Full seconds after the first five: the last one is partial.
	var accepted int64
	steady := secs[min(5, len(secs)):max(len(secs)-1, min(5, len(secs)))]
	for _, s := range steady {
		accepted += s.Accepted()
	}
	perSec := float64(accepted) / float64(max(len(steady), 1))
	share429 := float64(throttled) / float64(requests)
	b.ReportMetric(perSec, "accepted_req/s")
	b.ReportMetric(perSec/server*100, "accepted_%_of_limit")
	b.ReportMetric(share429*100, "429_%")
	b.Logf("server bucket %d: accepted %.1f req/s after the first 5 s (%.1f%% of %v) over %d s; %d requests, %d 429s (%.1f%%); "+
		"summary: achieved %.1f/s, final rate %v, throttle events %v, cuts %v, pauses %v; load %s",
		serverBurst, perSec, perSec/server*100, server, len(steady), requests, throttled, share429*100,
		o.num("rate_achieved"), o.num("rate_final"), o.num("throttle_events"), o.num("rate_cuts"), o.num("rate_pauses"), loadAverage())
	if !assert {
		return
	}
	if perSec < 0.85*server {
		b.Errorf("accepted %.1f req/s after the first 5 s, want at least %.1f (85%% of %v)", perSec, 0.85*server, server)
	}
	if share429 > 0.10 {
		b.Errorf("429s are %.1f%% of the requests, want at most 10%%", share429*100)
	}
}

// BenchmarkRateGroup runs two etl processes (this test binary as etl) with
// one --rate-group and --rate 300 (burst 1 each, concurrency 8), 4,500 IDs
// each, against one simulator answering after 5 ms, with the group in a
// throwaway PostgreSQL. Targets: no wall-clock second carries more than
// 300 x 1.02 + burst requests; together the simulator sees at least 90% of
// 300 a second from the first request to the last.
func BenchmarkRateGroup(b *testing.B) {
	requireFullRun(b)
	const (
		n     = 4500
		rate  = 300.0
		burst = 1
	)
	url := pgtest.ConnString(b)
	var stdout, stderr bytes.Buffer
	if code := Main(b.Context(), []string{"migrate", "--database-url", url}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		b.Fatalf("etl migrate exit %d: %s", code, stderr.String())
	}
	sim, sk := benchSim(b, cmssim.Config{TLS: true, Latency: 5 * time.Millisecond, TrackSeconds: true})
	dir := b.TempDir()
	var inputs [2]string
	for i := range inputs {
		inputs[i] = writeBenchCSVFrom(b, dir, fmt.Sprintf("calls-%d.csv", i), i*n, n)
	}
	var secs []cmssim.Second
	var outs [2]runOutput
	iter := 0
	for b.Loop() {
		iter++
		before := len(sim.Seconds())
		var wg sync.WaitGroup
		for i := range inputs {
			args := benchArgs(sim, sk, inputs[i], filepath.Join(dir, fmt.Sprintf("lake-%d-%d", iter, i)), "--rate", fmt.Sprint(rate),
				"--burst", strconv.Itoa(burst), "--concurrency", "8", "--rate-group", "bench", "--database-url", url)
			cmd := exec.CommandContext(b.Context(), os.Args[0], args...)
			cmd.Env = append(os.Environ(), beMainEnv+"=1")
			var stderr bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, io.Discard
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				err := cmd.Wait()
				if _, exited := errors.AsType[*exec.ExitError](err); err != nil && !exited {
					b.Errorf("etl %d: %v", i, err)
					return
				}
				outs[i] = parseRun(b, cmd.ProcessState.ExitCode(), stderr.String())
			})
		}
		wg.Wait()
		for i, o := range outs {
			if o.summary == nil {
				b.Fatalf("etl %d: no summary (exit %d): %s", i, o.code, tail(o.stderr, 4000))
			}
			requireAllLoaded(b, o, n)
		}
		secs = sim.Seconds()[before:]
	}
	var requests, peak int64
	for _, s := range secs {
		requests += s.Requests
		peak = max(peak, s.Requests)
	}
	// From the first request to the last: the first and last seconds are
	// partial, so count the full ones between them.
	inner := secs[1 : len(secs)-1]
	var innerReq int64
	for _, s := range inner {
		innerReq += s.Requests
	}
	together := float64(innerReq) / float64(len(inner))
	b.ReportMetric(together, "together_req/s")
	b.ReportMetric(together/rate*100, "together_%")
	b.ReportMetric(float64(peak), "peak_req/1s")
	b.Logf("together %.1f req/s over %d full seconds (%.1f%% of %v), busiest second %d, %d requests; per process: "+
		"achieved %.1f and %.1f/s, members seen %v and %v, cuts %v and %v; load %s",
		together, len(inner), together/rate*100, rate, peak, requests, outs[0].num("rate_achieved"), outs[1].num("rate_achieved"),
		outs[0].num("rate_group_members"), outs[1].num("rate_group_members"), outs[0].num("rate_cuts"), outs[1].num("rate_cuts"), loadAverage())
	if limit := rate*1.02 + burst; float64(peak) > limit {
		b.Errorf("busiest second carried %d requests, want at most %.0f (300 x 1.02 + burst)", peak, limit)
	}
	if together < 0.9*rate {
		b.Errorf("together %.1f req/s, want at least %.0f (90%% of %v)", together, 0.9*rate, rate)
	}
}

// writeBenchCSVFrom writes keys benchKey(from..from+n-1) to dir/name.
func writeBenchCSVFrom(tb testing.TB, dir, name string, from, n int) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	var buf bytes.Buffer
	buf.WriteString("ccId,vdn,callId\n")
	for i := from; i < from+n; i++ {
		k := benchKey(i)
		fmt.Fprintf(&buf, "%d,%d,%s\n", k.CCID, k.VDN, k.CallID)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// loadAverage is the machine's 1-, 5- and 15-minute load, to note beside
// the figures: the machine is shared.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
