package cli

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
)

// barFrame matches one drawing of the bar with a total.
var barFrame = regexp.MustCompile(`^\[([#-]{20})\] +(\d+)%  ([\d,]+)/(~?)([\d,]+) rows  ([\d.]+)/s  (ETA \S+|in \S+)$`)

type frame struct {
	pct, settled, total int64
	estimated           bool
	tail                string
}

func atoiComma(s string) int64 {
	n, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
	return n
}

// TestProgressBarOnATerminal runs etl with stderr on a pseudo-terminal: the
// bar appears before the first answer, counts rows settled against the
// file's estimated rows (marked ~) and then the exact count once the input
// is read, refreshes several times a second, shows rate and ETA, and ends
// on the true final count on a line of its own.
func TestProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{Latency: 150 * time.Millisecond})
	const rows = 800
	in, _ := h.writeCSV("calls.csv", rows)
	out := filepath.Join(h.dir, "lake")
	// No --progress or --log-format: the defaults must pick the bar.
	args := []string{"run", "--input", "csv:" + in, "--output", "parquet:" + out, "--api-url", h.sim.URL(),
		"--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile(), "--rate", "200", "--concurrency", "32"}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatalf("start etl on a pseudo-terminal: %v", err)
	}
	defer tty.Close()
	var (
		mu     sync.Mutex
		screen bytes.Buffer
	)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil { // EIO once the process is gone
				return
			}
		}
	}()
	start := time.Now()
	// The bar is drawn at once: before the simulator's first answer.
	var firstBar time.Duration
	for firstBar == 0 && time.Since(start) < 30*time.Second {
		mu.Lock()
		if strings.Contains(screen.String(), "rows") {
			firstBar = time.Since(start)
		}
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	err = cmd.Wait()
	elapsed := time.Since(start)
	<-copied
	if err != nil {
		t.Fatalf("etl on a terminal: %v\n%s", err, screen.String())
	}
	text := screen.String()

	var frames []frame
	for _, seg := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		seg = strings.TrimSuffix(seg, clearToEOL)
		m := barFrame.FindStringSubmatch(seg)
		if m == nil {
			continue
		}
		frames = append(frames, frame{pct: atoiComma(m[2]), settled: atoiComma(m[3]), estimated: m[4] == "~", total: atoiComma(m[5]), tail: m[7]})
	}
	if len(frames) < 3 {
		t.Fatalf("%d bar frames on the terminal:\n%q", len(frames), tail(text, 3000))
	}
	if f := frames[0]; f.settled != 0 || !f.estimated || f.total != rows {
		t.Errorf("first frame %+v: want 0 settled of ~%d rows, drawn before any answer (after %v)", f, rows, firstBar)
	}
	// Several refreshes a second (5 nominal; a busy machine skips some).
	if perSec := float64(len(frames)) / elapsed.Seconds(); perSec < 2 {
		t.Errorf("%d frames in %v: %.1f a second, want several", len(frames), elapsed, perSec)
	}
	var sawEstimate, sawExact, sawETA bool
	for i, f := range frames {
		if i > 0 && f.settled < frames[i-1].settled {
			t.Errorf("frame %d went back from %d to %d settled", i, frames[i-1].settled, f.settled)
		}
		if want := 100 * f.settled / f.total; f.pct != want {
			t.Errorf("frame %+v shows %d%%, want %d%% of rows settled", f, f.pct, want)
		}
		if i < len(frames)-1 {
			sawEstimate = sawEstimate || f.estimated && f.settled > 0
			sawExact = sawExact || !f.estimated
			sawETA = sawETA || strings.HasPrefix(f.tail, "ETA ") && f.tail != "ETA --"
		}
	}
	if !sawEstimate || !sawExact || !sawETA {
		t.Errorf("frames: estimate shown %v, exact total after the input was read %v, an ETA %v; want all", sawEstimate, sawExact, sawETA)
	}
	last := frames[len(frames)-1]
	if last.settled != rows || last.total != rows || last.pct != 100 || last.estimated || !strings.HasPrefix(last.tail, "in ") {
		t.Errorf("last frame %+v, want %d/%d rows at 100%% and the duration", last, rows, rows)
	}
	if !regexp.MustCompile(`\] 100%  800/800 rows  [\d.]+/s  in \S+` + regexp.QuoteMeta(clearToEOL) + `\r?\n`).MatchString(text) {
		t.Errorf("the final bar does not end its line:\n%q", tail(text, 1500))
	}
	// The human summary follows on the terminal, not the JSON event.
	if !strings.Contains(text, "rows read:   800") || strings.Contains(text, `"event":"run_summary"`) {
		t.Errorf("terminal output lacks the text summary or shows JSON:\n%s", tail(text, 2000))
	}
}

func TestRenderBar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    barState
		want string
	}{
		{"start, estimated", barState{Total: 12400, Estimated: true}, "[--------------------]   0%  0/~12,400 rows  0.0/s  ETA --"},
		{"estimated", barState{Settled: 5210, Read: 5722, Total: 12400, Estimated: true, Rate: 48.66},
			"[########------------]  42%  5,210/~12,400 rows  48.7/s  ETA 2m28s"},
		{"exact", barState{Settled: 12000, Read: 12391, Total: 12391, Rate: 50}, "[###################-]  96%  12,000/12,391 rows  50.0/s  ETA 8s"},
		{"unknown total", barState{Settled: 5210, Read: 5722, Rate: 48.66}, "5,210 rows settled of 5,722 read  48.7/s"},
		{"last", barState{Settled: 12391, Read: 12391, Total: 12391, Rate: 48.7, Elapsed: 253 * time.Second, Last: true},
			"[####################] 100%  12,391/12,391 rows  48.7/s  in 4m13s"},
		{"hours", barState{Settled: 1, Total: 1_000_000, Estimated: true, Rate: 100}, "[--------------------]   0%  1/~1,000,000 rows  100.0/s  ETA 2h46m"},
	}
	for _, tc := range tests {
		if got := renderBar(tc.s); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestEstimateRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small := write("small.csv", "ccId,vdn,callId\n1,1,1-1\n1,1,1-2\n1,1,1-3")
	if got := estimateRows(small, int64(len("ccId,vdn,callId\n1,1,1-1\n1,1,1-2\n1,1,1-3"))); got != 3 {
		t.Errorf("small file without a final newline: %d rows, want 3", got)
	}
	// Larger than the sample: estimated from its size, within a few percent.
	var b strings.Builder
	b.WriteString("ccId,vdn,callId\n")
	const n = 200_000
	for i := range n {
		b.WriteString("1," + strconv.Itoa(1+i%3) + ",1763856000000-" + strconv.Itoa(100000+i) + "\n")
	}
	big := write("big.csv", b.String())
	got := estimateRows(big, int64(b.Len()))
	if b.Len() <= estimateSample || got < n*97/100 || got > n*103/100 {
		t.Errorf("file of %d bytes: estimated %d rows, want about %d", b.Len(), got, n)
	}
	if got := estimateRows(filepath.Join(dir, "missing.csv"), 100); got != 0 {
		t.Errorf("missing file: %d", got)
	}
}

// fakeProgress is a job whose progress the test sets.
type fakeProgress struct {
	mu sync.Mutex
	p  pipeline.Progress
}

func (f *fakeProgress) Progress() pipeline.Progress {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p
}

// Off a terminal the progress line is logged every logEvery while the run
// lasts and never again at the end (the summary follows), so there is no
// duplicate last line.
func TestProgressLogHasNoTrailingDuplicate(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	src := &fakeProgress{p: pipeline.Progress{Read: 10, Settled: 4, Done: 2, Counts: outcome.Counts{outcome.Loaded: 2}, Requests: 5}}
	c := &Config{Progress: "auto"}
	p := startProgress(c, Env{Stderr: &logs}, zerolog.New(&syncWriter{w: &logs}), src, 100)
	p.finish()
	if logs.Len() != 0 {
		t.Errorf("a run shorter than %v logged progress: %s", logEvery, logs.String())
	}
	// One tick's line carries the settled count, the estimate and an ETA.
	d := &progressDisplay{src: src, estimate: 100, start: time.Now().Add(-2 * time.Second)}
	d.logLine(ptr(zerolog.New(&logs)))
	for _, want := range []string{`"read":10`, `"settled":4`, `"done":2`, `"loaded":2`, `"rows_estimated":100`, `"eta_s":48`, `"message":"progress"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("progress line lacks %s: %s", want, logs.String())
		}
	}
}

func ptr[T any](v T) *T { return &v }

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Log lines written while the bar is shown clear it first and redraw it
// after, so they never share a line.
func TestTermWriterKeepsLogLinesOffTheBar(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tw := &termWriter{w: &out}
	tw.draw("[bar 1]", false)
	if _, err := tw.Write([]byte("log line\n")); err != nil {
		t.Fatal(err)
	}
	tw.draw("[bar 2]", true)
	_, _ = tw.Write([]byte("after\n"))
	want := "\r[bar 1]" + clearToEOL + "\r" + clearToEOL + "log line\n[bar 1]" + "\r[bar 2]" + clearToEOL + "\n" + "after\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}
