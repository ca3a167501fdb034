package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
)

const (
	// barEvery refreshes the bar several times a second.
	barEvery = 200 * time.Millisecond
	// logEvery spaces the progress log lines written off a terminal.
	logEvery = 10 * time.Second
	// rateWindow is how far back the bar's rate (and so its ETA) looks.
	rateWindow = 5 * time.Second
	// estimateSample is how much of a regular input file is read to
	// estimate its rows from its size.
	estimateSample = 1 << 20
	// clearToEOL erases the rest of a terminal line.
	clearToEOL = "\x1b[K"
)

// termWriter is stderr. While a progress bar is shown, a write first clears
// the bar's line and draws the bar again after it, so log lines and the bar
// never share a line.
type termWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bar string // the bar as last drawn; "" when none is shown
}

func (t *termWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar == "" {
		return t.w.Write(p)
	}
	if _, err := io.WriteString(t.w, "\r"+clearToEOL); err != nil {
		return 0, err
	}
	n, err := t.w.Write(p)
	if err == nil {
		_, err = io.WriteString(t.w, t.bar)
	}
	return n, err
}

// draw shows line as the bar; a last bar stays on its own line.
func (t *termWriter) draw(line string, last bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last {
		_, _ = io.WriteString(t.w, "\r"+line+clearToEOL+"\n")
		t.bar = ""
		return
	}
	_, _ = io.WriteString(t.w, "\r"+line+clearToEOL)
	t.bar = line
}

// progressView is what a progress display shows: one bar on a terminal, or
// one log line off it.
type progressView interface {
	bar(last bool) string
	logLine(log *zerolog.Logger)
}

// progressLoop refreshes a view: a bar every barEvery on a terminal, a log
// line every logEvery otherwise (cron), nothing for --progress none.
type progressLoop struct {
	view progressView
	out  *termWriter     // bar mode
	log  *zerolog.Logger // log mode
	stop chan struct{}
	done chan struct{}
}

func startProgressLoop(mode string, env Env, log zerolog.Logger, view progressView) *progressLoop {
	l := &progressLoop{view: view, stop: make(chan struct{}), done: make(chan struct{})}
	if mode == "auto" {
		mode = "log"
		if env.StderrIsTerminal {
			mode = "bar"
		}
	}
	every := logEvery
	switch mode {
	case "bar":
		tw, ok := env.Stderr.(*termWriter)
		if !ok {
			tw = &termWriter{w: env.Stderr}
		}
		l.out, every = tw, barEvery
		l.tick(false) // at once, before the first request returns
	case "log":
		l.log = &log
	default:
		close(l.done)
		return l
	}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.tick(false)
			}
		}
	}()
	return l
}

func (l *progressLoop) tick(last bool) {
	if l.out != nil {
		l.out.draw(l.view.bar(last), last)
		return
	}
	l.view.logLine(l.log)
}

// finish stops the display; a bar ends on the final figures. Off a terminal
// nothing more is logged: the run summary follows.
func (l *progressLoop) finish() {
	select {
	case <-l.done:
		return
	default:
	}
	close(l.stop)
	<-l.done
	if l.out != nil {
		l.tick(true)
	}
}

// progressSource is the running job.
type progressSource interface {
	Progress() pipeline.Progress
}

// progressDisplay is etl run's view. Bar and log line count rows settled
// (their outcome is known, before any commit) against the rows read, and
// against the estimated rows of a regular input file until the whole input
// is read.
type progressDisplay struct {
	src      progressSource
	estimate int64 // rows of the input file, estimated from its size; 0 when unknown
	start    time.Time
	samples  []sample // settled counts over the last rateWindow
}

type sample struct {
	at      time.Time
	settled int64
}

// startProgress starts the display c.Progress asks for; estimate is 0 when
// the total is unknown (standard input, a pipe, the queue).
func startProgress(c *Config, env Env, log zerolog.Logger, src progressSource, estimate int64) *progressLoop {
	return startProgressLoop(c.Progress, env, log, &progressDisplay{src: src, estimate: estimate, start: time.Now()})
}

// rate is rows settled per second over the last rateWindow (since the start
// until half a second of samples exists).
func (p *progressDisplay) rate(now time.Time, settled int64) float64 {
	p.samples = append(p.samples, sample{now, settled})
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	if first := p.samples[0]; now.Sub(first.at) >= 500*time.Millisecond {
		return rateOver(settled-first.settled, now.Sub(first.at))
	}
	return rateOver(settled, now.Sub(p.start))
}

func (p *progressDisplay) bar(last bool) string {
	pr := p.src.Progress()
	now := time.Now()
	st := barState{Settled: pr.Settled, Read: pr.Read, Elapsed: now.Sub(p.start), Last: last}
	switch {
	case pr.InputDone || last:
		st.Total = pr.Read
	case p.estimate > 0:
		st.Total, st.Estimated = max(p.estimate, pr.Read), true
	}
	if last {
		st.Rate = rateOver(pr.Settled, st.Elapsed)
	} else {
		st.Rate = p.rate(now, pr.Settled)
	}
	return renderBar(st)
}

func (p *progressDisplay) logLine(log *zerolog.Logger) {
	pr := p.src.Progress()
	elapsed := time.Since(p.start)
	ev := log.Info().Int64("read", pr.Read).Int64("settled", pr.Settled).Int64("done", pr.Done).
		Int64("loaded", pr.Counts[outcome.Loaded]).Int64("failed", pr.Counts[outcome.Failed]).Int64("requests", pr.Requests).
		Float64("req_per_s", round1(rateOver(pr.Requests, elapsed)))
	total := int64(0)
	switch {
	case pr.InputDone:
		total = pr.Read
	case p.estimate > 0:
		total = max(p.estimate, pr.Read)
		ev = ev.Int64("rows_estimated", total)
	}
	if r := rateOver(pr.Settled, elapsed); total > 0 && r > 0 {
		ev = ev.Float64("eta_s", round1(float64(max(total-pr.Settled, 0))/r))
	}
	ev.Msg("progress")
}

func rateOver(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// barState is what one drawing of the bar shows.
type barState struct {
	Settled, Read int64
	Total         int64 // 0: unknown
	Estimated     bool  // Total is an estimate from the file size
	Rate          float64
	Elapsed       time.Duration
	Last          bool
}

const barWidth = 20

// renderBar is one line, at most about 75 columns:
//
//	[########------------]  42%  5,210/~12,400 rows  48.7/s  ETA 2m27s
//	5,210 rows settled of 5,722 read  48.7/s
//	[####################] 100%  12,391/12,391 rows  48.7/s  in 4m13s
func renderBar(s barState) string {
	var b strings.Builder
	if s.Total > 0 {
		// Settled never exceeds Total (at least the rows read), so 100%
		// means every row read is settled and the input is exhausted.
		pct := min(100*s.Settled/s.Total, 100)
		filled := min(barWidth*s.Settled/s.Total, barWidth)
		b.WriteByte('[')
		b.WriteString(strings.Repeat("#", int(filled)))
		b.WriteString(strings.Repeat("-", barWidth-int(filled)))
		fmt.Fprintf(&b, "] %3d%%  %s/", pct, thousands(s.Settled))
		if s.Estimated {
			b.WriteByte('~')
		}
		fmt.Fprintf(&b, "%s rows", thousands(s.Total))
	} else {
		fmt.Fprintf(&b, "%s rows settled of %s read", thousands(s.Settled), thousands(s.Read))
	}
	fmt.Fprintf(&b, "  %s/s", strconv.FormatFloat(s.Rate, 'f', 1, 64))
	switch {
	case s.Last:
		fmt.Fprintf(&b, "  in %s", shortDuration(s.Elapsed))
	case s.Total > 0 && s.Rate > 0:
		eta := time.Duration(float64(max(s.Total-s.Settled, 0)) / s.Rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", shortDuration(eta))
	case s.Total > 0:
		b.WriteString("  ETA --")
	}
	return b.String()
}

// thousands is n with comma separators: 12400 -> "12,400".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// shortDuration is a duration to the second: 2m27s, 1h04m, 3s.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// estimateRows estimates the data rows of a CSV file of size bytes from the
// lines in its first estimateSample bytes (exact up to blank lines and
// quoted line breaks when the sample is the whole file). 0 when it cannot.
func estimateRows(path string, size int64) int64 {
	if size <= 0 {
		return 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, min(size, estimateSample))
	n, err := io.ReadFull(f, buf)
	if err != nil && n == 0 {
		return 0
	}
	buf = buf[:n]
	lines := int64(bytes.Count(buf, []byte{'\n'}))
	if int64(n) == size {
		if buf[n-1] != '\n' {
			lines++
		}
		return max(lines-1, 0) // the header
	}
	if lines < 2 {
		return 0
	}
	return max(size*lines/int64(n)-1, 0)
}
