package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load/postgres"
)

// liveMetric is a metric of the running process (gauges read at scrape
// time, the first-answer histogram); the textfile carries them too, as they
// stand at the end.
type liveMetric struct{ name, help string }

var (
	metricQueueDue     = liveMetric{"cms_etl_queue_due", "Queue rows of this run's query claimable now (pending and due, or with an expired lease)."}
	metricQueueTracked = liveMetric{"cms_etl_queue_tracked", "Calls being tracked: answered live, asked again until they end (--track-every)."}
	metricInFlight     = liveMetric{"cms_etl_in_flight", "Calls being asked right now (requests in flight, their retries included)."}
	metricPaused       = liveMetric{"cms_etl_paused", "1 while a follower is paused because CC-CMS does not answer (it probes until it does), else 0."}
	metricListening    = liveMetric{"cms_etl_queue_listening", "1 while a follower's LISTEN connection for queue notifications is up (else it only polls), else 0."}
	metricFirstAnswer  = liveMetric{"cms_etl_enqueue_to_first_answer_seconds", "Delay from a call's insertion into cms.call_queue to the first answer of CC-CMS about it (live or no data)."}
	liveMetrics        = []liveMetric{metricQueueDue, metricQueueTracked, metricInFlight, metricPaused, metricListening, metricFirstAnswer}
)

// health is what /healthz says.
type health int32

const (
	healthStarting health = iota
	healthWorking
	healthPaused
	healthStopping
)

// observer is a run's metrics registry, health and outage accounting. It
// exists before the run is wired (the query and the pool report to it) and
// learns what to summarize once it is (setSummary).
type observer struct {
	reg         *prometheus.Registry
	firstAnswer prometheus.Histogram
	inFlight    atomic.Int64
	state       atomic.Int32

	mu          sync.Mutex
	summary     func() Summary // the run so far; nil before wiring
	final       *Summary       // set when the run ended
	queue       *queue.Consumer
	pausedSince time.Time
	outages     int64
	paused      time.Duration // ended pauses
	lastErr     string        // the outage's latest error, for /healthz
	commit      func()        // hears each commit (the rolling run record); may be nil
}

// onCommit sets what hears each commit.
func (o *observer) onCommit(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.commit = f
}

// committed is the pipeline's OnCommit.
func (o *observer) committed() {
	o.mu.Lock()
	f := o.commit
	o.mu.Unlock()
	if f != nil {
		f()
	}
}

// liveSummary is the summary of a run still running: the committed counts
// so far, the requests, the rate.
func liveSummary(c *Config, w *wiring, started time.Time) Summary {
	pr := w.run.Progress()
	s := summarize(c, w, pipeline.Result{Counts: pr.Counts, Read: pr.Read, Started: started, Finished: time.Now(),
		Problems: pr.Problems, Unknown: pr.Unknown, Failures: pr.Failures})
	s.Status, s.ExitCode = "running", 0
	return s
}

func newObserver() *observer {
	o := &observer{reg: prometheus.NewRegistry()}
	o.firstAnswer = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: metricFirstAnswer.name, Help: metricFirstAnswer.help,
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300},
	})
	o.reg.MustRegister(o.firstAnswer,
		newSummaryCollector(summaryMetrics, o.snapshot),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metricInFlight.name, Help: metricInFlight.help},
			func() float64 { return float64(o.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metricPaused.name, Help: metricPaused.help},
			func() float64 { return b2f(health(o.state.Load()) == healthPaused) }),
		&queueCollector{o: o,
			due:       prometheus.NewDesc(metricQueueDue.name, metricQueueDue.help, nil, nil),
			tracked:   prometheus.NewDesc(metricQueueTracked.name, metricQueueTracked.help, nil, nil),
			listening: prometheus.NewDesc(metricListening.name, metricListening.help, nil, nil)},
	)
	return o
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// setSummary tells the observer how to summarize the run so far and which
// queue it reads.
func (o *observer) setSummary(summary func() Summary, q *queue.Consumer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.summary, o.queue = summary, q
}

// finish fixes the final summary: gathers from now on report it.
func (o *observer) finish(s Summary) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.final = &s
	o.state.Store(int32(healthStopping))
}

func (o *observer) snapshot() (Summary, bool) {
	o.mu.Lock()
	final, summary := o.final, o.summary
	o.mu.Unlock()
	if final != nil {
		return *final, true
	}
	if summary == nil {
		return Summary{Counts: outcome.Counts{}}, false
	}
	return summary(), false
}

// outageStats are the outages ridden out so far and the time paused,
// the current pause included.
func (o *observer) outageStats() (int64, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := o.paused
	if !o.pausedSince.IsZero() {
		d += time.Since(o.pausedSince)
	}
	return o.outages, d
}

// onOutage is the pool's OnOutage: logs, health, accounting.
func (o *observer) onOutage(log zerolog.Logger) func(pool.OutageEvent) {
	return func(ev pool.OutageEvent) {
		o.mu.Lock()
		defer o.mu.Unlock()
		switch ev.Kind {
		case pool.Paused:
			o.outages++
			o.pausedSince, o.lastErr = time.Now(), ev.Err.Error()
			o.state.CompareAndSwap(int32(healthWorking), int32(healthPaused))
			log.Warn().Err(ev.Err).Str("event", "api_paused").
				Msg("CC-CMS does not answer: stopped claiming; probing it with backoff (calls in flight are asked again after)")
		case pool.ProbeFailed:
			o.lastErr = ev.Err.Error()
			log.Warn().Err(ev.Err).Str("event", "api_probe_failed").Dur("paused_for", ev.Paused).Dur("next_probe_in", ev.Next).
				Msg("CC-CMS still does not answer")
		case pool.Resumed:
			if !o.pausedSince.IsZero() {
				o.paused += time.Since(o.pausedSince)
			}
			o.pausedSince, o.lastErr = time.Time{}, ""
			o.state.CompareAndSwap(int32(healthPaused), int32(healthWorking))
			log.Info().Str("event", "api_resumed").Dur("paused_for", ev.Paused).Msg("CC-CMS answers again: claiming resumed")
		}
	}
}

// countInFlight wraps a query so the in-flight gauge counts its calls.
func countInFlight[R any](o *observer, q pipeline.Query[R]) pipeline.Query[R] {
	return func(ctx context.Context, it pipeline.Item) (pipeline.Answer[R], pool.Verdict, error) {
		o.inFlight.Add(1)
		defer o.inFlight.Add(-1)
		return q(ctx, it)
	}
}

// queueCollector reads the queue's depth at scrape time.
type queueCollector struct {
	o                       *observer
	due, tracked, listening *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.due
	ch <- c.tracked
	ch <- c.listening
}

// depthTimeout bounds the queue count of one scrape.
const depthTimeout = 2 * time.Second

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.o.mu.Lock()
	q := c.o.queue
	c.o.mu.Unlock()
	if q == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	if d, err := q.Queue().Depth(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(d.Due))
		ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(d.Tracked))
	}
	ch <- prometheus.MustNewConstMetric(c.listening, prometheus.GaugeValue, b2f(q.Listening()))
}

// writeTextfile writes the registry for node_exporter's textfile collector,
// atomically.
func (o *observer) writeTextfile(path string) error {
	if err := prometheus.WriteToTextfile(path, o.reg); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// serve starts the HTTP server of --listen: /metrics and /healthz. It
// returns once the address is bound (so a bad address is refused at start).
func (o *observer) serve(addr string, log zerolog.Logger) (stop func(context.Context), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("--listen %s: %w", addr, err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{ErrorLog: promLog{log}}))
	mux.HandleFunc("/healthz", o.healthz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("listen", addr).Msg("metrics server stopped")
		}
	}()
	log.Info().Str("listen", ln.Addr().String()).Msg("serving /metrics and /healthz")
	return func(ctx context.Context) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// healthz: 200 while the run works, 503 while it is paused by an API
// outage, starting or stopping; the body says which, in one line.
func (o *observer) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch health(o.state.Load()) {
	case healthWorking:
		fmt.Fprintln(w, "ok: working")
	case healthPaused:
		o.mu.Lock()
		since, why := o.pausedSince, o.lastErr
		o.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "paused: CC-CMS does not answer since %s (probing): %s\n", since.UTC().Format(time.RFC3339), oneLine(why))
	case healthStarting:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "starting")
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "stopping")
	}
}

// promLog sends the metrics handler's errors to the run's log.
type promLog struct{ log zerolog.Logger }

func (p promLog) Println(v ...any) { p.log.Error().Msg(fmt.Sprint(v...)) }

// runRecorder keeps a running run's cms.etl_run row current: after each
// commit (signalled by the pipeline's OnCommit) it writes the counts so
// far; one write at a time, signals coalesced.
type runRecorder struct {
	signal chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

func startRunRecorder(ctx context.Context, db *pgxpool.Pool, record func() postgres.RunRecord, log zerolog.Logger) *runRecorder {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &runRecorder{signal: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.signal:
			}
			uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := postgres.UpdateRun(uctx, db, record()); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("update the run's row in cms.etl_run")
			}
			cancel()
		}
	}()
	return r
}

// stop ends the recorder (before the run's final record) and waits for it.
func (r *runRecorder) stop() {
	r.cancel()
	<-r.done
}

// committed is the pipeline's OnCommit.
func (r *runRecorder) committed() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}
