package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

// BenchmarkFollow (make bench-follow): a producer inserts 20 new calls a
// second into cms.call_queue at their start (durations 20-120 s, the
// simulator's schedule over TLS, 20 ms latency) for 2 minutes; a follower
// enriches them. Three phases, each on a fresh database:
//
//   - no tracking at --rate 100: targets >= 99.5% of calls enriched while
//     live, p99 enqueue-to-first-answer <= 1 s;
//   - --track-every 5s at --rate 100: reported (tracking 20 calls/s of 70 s
//     on average needs about 300 requests/s: new calls go first, polls slip);
//   - --track-every 5s at --rate 350 (the budget plus headroom): target each
//     tracked call's last live answer within 5 s + p99 latency of its end.
//
// Requests per call are reported against the minimum: 1 without tracking;
// with tracking, a poll every 5 s while live plus the "no data" that ends it.
func BenchmarkFollow(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Follow") {
		b.Skip("minutes long: run it by name (make bench-follow)")
	}
	for _, ph := range []followPhase{
		{name: "no tracking, rate 100", rate: 100},
		{name: "track 5s, rate 100", rate: 100, track: 5 * time.Second},
		{name: "track 5s, rate 350", rate: 350, track: 5 * time.Second},
	} {
		b.Run(strings.NewReplacer(" ", "_", ",", "").Replace(ph.name), func(b *testing.B) {
			for b.Loop() {
				ph.run(b)
			}
		})
	}
}

type followPhase struct {
	name  string
	rate  float64
	track time.Duration
}

const (
	benchCallsPerSecond = 20
	benchGenerate       = 2 * time.Minute
	benchVDNs           = 4
)

func (ph followPhase) run(b *testing.B) {
	url := pgtest.ConnString(b)
	var migrateErr strings.Builder
	if code := Main(b.Context(), []string{"migrate", "--database-url", url}, Env{Stdout: io.Discard, Stderr: &migrateErr}); code != ExitOK {
		b.Fatalf("etl migrate exit %d: %s", code, migrateErr.String())
	}
	calls := cmssim.DefaultCalls()
	for v := range benchVDNs {
		calls.VDNs = append(calls.VDNs, cmssim.VDN{CCID: 1, VDN: 25 + v})
	}
	calls.VDNs = calls.VDNs[1:] // DefaultCalls' own VDN 1 is not used
	calls.CallsPerMinute = benchCallsPerSecond * 60 / benchVDNs
	calls.MinDuration, calls.MaxDuration = 20*time.Second, 120*time.Second
	sim, sk := benchSim(b, cmssim.Config{TLS: true, TrackCallIDs: true, Latency: 15 * time.Millisecond, LatencyJitter: 10 * time.Millisecond,
		Calls: &calls})
	db, err := pgxpool.New(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()

	args := []string{"run", "--input", "queue", "--follow", "--output", "postgres", "--database-url", url,
		"--api-url", sim.URL(), "--ak", testCreds.AK, "--sk-file", sk, "--ca-file", sim.CAFile(),
		"--progress", "none", "--log-format", "json", "--rate", strconv.FormatFloat(ph.rate, 'f', -1, 64), "--concurrency", "16"}
	if ph.track > 0 {
		args = append(args, "--track-every", ph.track.String())
	}
	ctx, stop := context.WithCancel(b.Context())
	var stderr syncWriter
	var buf strings.Builder
	stderr.w = &buf
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, Env{Stdout: io.Discard, Stderr: &stderr}) }()
	time.Sleep(2 * time.Second) // started and listening

	load := loadAverage()
	gen, err := cmssim.NewGenerator(cmssim.GeneratorConfig{Schedule: sim.Schedule(), Until: time.Now().Add(benchGenerate)})
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu        sync.Mutex
		generated []cmssim.Call
	)
	var producer sync.WaitGroup
	genStats, err := gen.Run(b.Context(), func(ctx context.Context, c cmssim.Call) error {
		mu.Lock()
		generated = append(generated, c)
		mu.Unlock()
		// Each call on its own, as an event source inserts at call start.
		producer.Go(func() {
			if _, err := db.Exec(ctx, `INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				c.CCID, c.VDN, c.CallID); err != nil {
				b.Error(err)
			}
		})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	producer.Wait()
	// Every call ends within 120 s of its start; tracking ends with the
	// first "no data" after that.
	lastEnd := time.Time{}
	for _, c := range generated {
		if c.CallEnd.After(lastEnd) {
			lastEnd = c.CallEnd
		}
	}
	time.Sleep(time.Until(lastEnd) + ph.track + 5*time.Second)
	stop()
	code := <-done
	o := parseRun(b, code, buf.String())
	if code != ExitOK {
		b.Fatalf("follower exit %d:\n%s", code, tail(buf.String(), 3000))
	}

	type row struct {
		enqueued, first, last time.Time
		found                 bool
	}
	rows := map[string]row{}
	r, err := db.Query(b.Context(), `SELECT q.call_id, q.enqueued_at, i.first_seen_live_at, i.last_seen_live_at
		FROM cms.call_queue q JOIN cms.call_info i USING (cc_id, vdn, call_id)`)
	if err != nil {
		b.Fatal(err)
	}
	for r.Next() {
		var id string
		var x row
		if err := r.Scan(&id, &x.enqueued, &x.first, &x.last); err != nil {
			b.Fatal(err)
		}
		x.found = true
		rows[id] = x
	}
	r.Close()
	reqs := sim.Stats().CallIDRequests
	var (
		live                 int
		firstLat, endGaps    []float64
		requests, minimum    float64
		trackedOK, trackedAt int
	)
	for _, c := range generated {
		x := rows[c.CallID]
		if x.found && x.first.Before(c.CallEnd) {
			live++
		}
		if x.found {
			firstLat = append(firstLat, x.first.Sub(x.enqueued).Seconds())
		}
		requests += float64(reqs[simKey(c.Key())])
		if ph.track == 0 {
			minimum++
			continue
		}
		d := c.CallEnd.Sub(c.WaitBegin)
		minimum += math.Floor(d.Seconds()/ph.track.Seconds()) + 2 // polls while live, and the "no data" that ends it
		if x.found {
			endGaps = append(endGaps, c.CallEnd.Sub(x.last).Seconds())
		}
	}
	n := float64(len(generated))
	p99 := quantile(firstLat, 0.99)
	b.ReportMetric(float64(len(generated)), "calls")
	b.ReportMetric(100*float64(live)/n, "%_enriched_live")
	b.ReportMetric(quantile(firstLat, 0.5)*1000, "p50_first_answer_ms")
	b.ReportMetric(p99*1000, "p99_first_answer_ms")
	b.ReportMetric(requests/n, "requests/call")
	b.ReportMetric(minimum/n, "minimum_requests/call")
	b.ReportMetric(o.num("requests")/o.num("duration_s"), "achieved_req/s")
	line := fmt.Sprintf("%s: %d calls (generator lag max %s), %.2f%% enriched while live, first answer p50 %.0f ms p99 %.0f ms max %.0f ms, "+
		"%.2f requests/call (minimum %.2f), %.1f req/s achieved, load before %s",
		ph.name, len(generated), genStats.MaxLag.Round(time.Millisecond), 100*float64(live)/n, quantile(firstLat, 0.5)*1000, p99*1000,
		quantile(firstLat, 1)*1000, requests/n, minimum/n, o.num("requests")/o.num("duration_s"), load)
	if ph.track > 0 {
		bound := ph.track.Seconds() + p99
		for _, g := range endGaps {
			trackedAt++
			if g <= bound {
				trackedOK++
			}
		}
		b.ReportMetric(100*float64(trackedOK)/float64(max(trackedAt, 1)), "%_last_live_within_bound")
		b.ReportMetric(quantile(endGaps, 0.99), "p99_end_gap_s")
		line += fmt.Sprintf("; last live answer before the end: p50 %.1f s p99 %.1f s max %.1f s, %.2f%% within %.1f s (5 s + p99)",
			quantile(endGaps, 0.5), quantile(endGaps, 0.99), quantile(endGaps, 1), 100*float64(trackedOK)/float64(max(trackedAt, 1)), bound)
	}
	b.Log(line)
	if ph.track == 0 {
		if pct := 100 * float64(live) / n; pct < 99.5 {
			b.Errorf("%.2f%% of calls enriched while live, want >= 99.5%%", pct)
		}
		if p99 > 1 {
			b.Errorf("p99 enqueue-to-first-answer %.0f ms, want <= 1 s", p99*1000)
		}
	}
	if ph.track > 0 && ph.rate >= 300 && trackedOK < trackedAt {
		b.Errorf("%d of %d tracked calls' last live answer more than 5 s + p99 before their end", trackedAt-trackedOK, trackedAt)
	}
}

// quantile of xs (0..1), nearest rank; 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
