package cli

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// Sporadic transient faults, 503 without Retry-After among them, are
// retried call by call: the pool neither pauses nor cuts its rate.
func TestTransientFaultsNeitherPauseNorCut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{TransientShare: 0.04, TransientAttempts: 1,
		TransientKinds: []string{cmssim.FaultUnavailable, cmssim.FaultServerError, cmssim.FaultDrop, cmssim.FaultGenericFailure}})
	in, keys := h.writeCSV("calls.csv", 300)
	o := h.run(h.args(in, filepath.Join(h.dir, "lake"), "--rate", "200", "--concurrency", "8")...)
	checkAccounting(t, o)
	if o.code != ExitOK || o.outcome("loaded") != int64(len(keys)) {
		t.Fatalf("exit %d, outcomes %v; stderr:\n%s", o.code, o.summary["outcomes"], o.stderr)
	}
	if h.sim.Stats().ByOutcome[cmssim.OutcomeUnavailable] == 0 || o.num("retries_transient") == 0 {
		t.Fatalf("no 503 was answered or retried (%v retries after transient faults); the test proves nothing", o.num("retries_transient"))
	}
	if o.num("rate_pauses") != 0 || o.num("rate_cuts") != 0 || o.num("throttle_events") != 0 || o.num("rate_final") != 200 {
		t.Errorf("pauses %v, cuts %v, events %v, final rate %v; want none and 200", o.num("rate_pauses"), o.num("rate_cuts"),
			o.num("throttle_events"), o.num("rate_final"))
	}
}

// errorProxy is a real HTTPS server that answers every request with status,
// like a proxy or a wrong port in front of CC-CMS; caFile trusts it.
func errorProxy(t *testing.T, status int) (url, caFile string, requests *atomic.Int64) {
	t.Helper()
	requests = &atomic.Int64{}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		if status/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", status, http.StatusText(status))
	}))
	t.Cleanup(ts.Close)
	caFile = filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ts.URL, caFile, requests
}

// Issue 9, defect 3: an endpoint answering every call with an HTTP error
// stops the run with exit 1 and a message naming the status and the URL;
// the rows are left for the next run, not marked failed.
func TestHTTPErrorStreakStopsTheRunAndLeavesTheRows(t *testing.T) {
	t.Parallel()
	for _, status := range []int{404, 302, 405} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, cmssim.Config{})
			proxyURL, proxyCA, requests := errorProxy(t, status)
			in, keys := h.writeCSV("calls.csv", 200)
			out := filepath.Join(h.dir, "lake")
			args := h.args(in, out, "--rate", "0", "--concurrency", "4", "--max-transient-streak", "20")
			args = append(args, "--api-url", proxyURL, "--ca-file", proxyCA) // later flags win
			o := h.run(args...)
			checkAccounting(t, o)
			if o.code != ExitAborted {
				t.Fatalf("exit %d, want %d; stderr:\n%s", o.code, ExitAborted, o.stderr)
			}
			msg, _ := o.summary["error"].(string)
			if !strings.Contains(msg, fmt.Sprintf("HTTP %d", status)) || !strings.Contains(msg, proxyURL+cms.QueryPath) {
				t.Errorf("error %q should name HTTP %d and %s", msg, status, proxyURL+cms.QueryPath)
			}
			// The CSV is read ahead in batches, and the feed hands a batch
			// over before it waits for the next one: the stop may come
			// before every row was read. The rows read are left, none failed.
			if o.outcome("failed") != 0 || o.outcome("unprocessed") != int64(o.num("rows_read")) || o.num("rows_read") == 0 {
				t.Errorf("rows read %v, outcomes %v; want every row read unprocessed (left for the next run), none failed", o.num("rows_read"), o.summary["outcomes"])
			}
			if n := requests.Load(); n > 20+4 {
				t.Errorf("%d requests; want the run to stop after a streak of 20", n)
			}
			if rej := readRejects(t, filepath.Join(out, "_rejects")); len(rej) != 0 {
				t.Errorf("rejects file holds %d rows; the calls did not fail, the URL did", len(rej))
			}
			// The next run, against the right URL, takes every row.
			again := h.run(h.args(in, out, "--rate", "0")...)
			checkAccounting(t, again)
			if again.code != ExitOK || again.outcome("loaded") != int64(len(keys)) {
				t.Fatalf("rerun: exit %d, outcomes %v", again.code, again.summary["outcomes"])
			}
		})
	}
}

// The queue variant: the streak's rows are handed back, still pending, with
// no failure recorded.
func TestHTTPErrorStreakHandsQueueRowsBack(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{})
	proxyURL, proxyCA, _ := errorProxy(t, 404)
	in, keys := h.writeCSV("calls.csv", 150)
	enqueueCSV(t, url, in)
	args := append(queueArgs(h, url, "--rate", "0", "--concurrency", "4", "--max-transient-streak", "20"),
		"--api-url", proxyURL, "--ca-file", proxyCA)
	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitAborted {
		t.Fatalf("exit %d, want %d; stderr:\n%s", o.code, ExitAborted, o.stderr)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'failed'"); n != 0 {
		t.Errorf("%d queue rows marked failed by a wrong URL", n)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_failure"); n != 0 {
		t.Errorf("%d failures recorded for a wrong URL", n)
	}
	// Handed back at once, not left to their lease: the right URL takes them all now.
	again := h.run(queueArgs(h, url, "--rate", "0")...)
	checkAccounting(t, again)
	if again.code != ExitOK || again.outcome("loaded") != int64(len(keys)) {
		t.Fatalf("rerun: exit %d, outcomes %v; stderr:\n%s", again.code, again.summary["outcomes"], again.stderr)
	}
	checkQueueSettled(t, db, int64(len(keys)))
}

// stallingListener hands the server its first connection only; later ones
// are accepted by the kernel but never served, so their TLS handshake hangs,
// as with a server slow to take new connections.
type stallingListener struct {
	net.Listener
	mu      sync.Mutex
	served  bool
	stalled []net.Conn
}

func (l *stallingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		first := !l.served
		l.served = true
		if !first {
			l.stalled = append(l.stalled, c)
		}
		l.mu.Unlock()
		if first {
			return c, nil
		}
	}
}

func (l *stallingListener) Close() error {
	l.mu.Lock()
	for _, c := range l.stalled {
		c.Close()
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// Issue 9, defect 7: the summary counts the requests that were sent, not the
// attempts a fatal stop cut off while they were still connecting (it said 8
// where the server saw 3).
func TestSummaryCountsOnlySentRequests(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		w.Header().Set("Connection", "close") // no other worker reuses the one connection
		w.WriteHeader(http.StatusUnauthorized)
	}))
	ts.Listener = &stallingListener{Listener: ts.Listener}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, cmssim.Config{})
	in, _ := h.writeCSV("calls.csv", 100)
	// Eight workers start at once; one connection is served, seven hang in
	// their handshake until the 401 stops the run.
	o := h.run(append(h.args(in, filepath.Join(h.dir, "lake"), "--rate", "0", "--concurrency", "8"),
		"--api-url", ts.URL, "--ca-file", caFile)...)
	checkAccounting(t, o)
	if o.code != ExitAborted {
		t.Fatalf("exit %d, want %d on HTTP 401; stderr:\n%s", o.code, ExitAborted, o.stderr)
	}
	if got, seen := int64(o.num("requests")), served.Load(); got != seen || seen != 1 {
		t.Errorf("summary counts %d requests, the server saw %d (want 1)", got, seen)
	}
}

// Two runs with one --rate-group share one --rate: together no second
// carries more than the rate (+2%, + their bursts), both load everything,
// and a CSV -> Parquet run uses the database for the group alone.
func TestRateGroupSharesOneRate(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{TrackSeconds: true})
	const rate, rows = 100, 150
	type result struct {
		o   runOutput
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		in, _ := h.writeCSV(fmt.Sprintf("calls-%d.csv", i), rows)
		// Distinct keys per run: shift the second file's call IDs.
		if i == 1 {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in, []byte(strings.ReplaceAll(string(b), ",17638", ",27638")), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := h.args(in, filepath.Join(h.dir, fmt.Sprintf("lake-%d", i)), "--rate", fmt.Sprint(rate),
			"--rate-group", "nightly", "--database-url", url, "--concurrency", "4")
		cmd, stderr := h.subprocess(args...)
		wg.Go(func() {
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if code < 0 {
				results[i] = result{err: err}
				return
			}
			results[i] = result{o: parseRun(t, code, stderr.String())}
		})
	}
	wg.Wait()
	maxMembers := 0.0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("run %d: %v", i, r.err)
		}
		checkAccounting(t, r.o)
		if r.o.code != ExitOK || r.o.outcome("loaded") != rows {
			t.Fatalf("run %d: exit %d, outcomes %v; stderr:\n%s", i, r.o.code, r.o.summary["outcomes"], r.o.stderr)
		}
		if r.o.summary["rate_group"] != "nightly" {
			t.Errorf("run %d: summary rate_group %v", i, r.o.summary["rate_group"])
		}
		maxMembers = max(maxMembers, r.o.num("rate_group_members"))
	}
	if maxMembers != 2 {
		t.Errorf("neither run saw the other in the group (members %v)", maxMembers)
	}
	for _, sec := range h.sim.Seconds() {
		if limit := rate*1.02 + 2; float64(sec.Requests) > limit {
			t.Errorf("second %d carried %d requests, want at most %v (the group's rate + 2%% + one burst each)", sec.Unix, sec.Requests, limit)
		}
	}
	if n := count(t, db, "SELECT count(*) FROM cms.etl_run") + count(t, db, "SELECT count(*) FROM cms.call_info"); n != 0 {
		t.Errorf("a CSV -> Parquet run wrote %d rows to the database; it uses it for the group only", n)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.rate_group_member"); n != 0 {
		t.Errorf("%d members left in the group after both runs ended", n)
	}
}
