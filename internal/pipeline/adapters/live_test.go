package adapters

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/transform"
)

// A tracked call against the simulator's schedule (real TLS): each live
// answer is Tracked with its answer kept and its first live time carried
// on; "no data" after it ended makes the final row from the last kept
// answer, for the outputs taking one row per call; the first answer's
// latency is reported once.
func TestQueueBasicQueryTracksACallToItsEnd(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	day := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock.Store(day.UnixNano())
	calls := cmssim.DefaultCalls()
	calls.CallsPerMinute, calls.AbandonShare, calls.InboundShare = 60, 0, 1
	calls.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	creds := authv2.Credentials{AK: "ak", SK: "sk-live-test"}
	sim, err := cmssim.Start(t.Context(), cmssim.Config{TLS: true, Credentials: creds, Calls: &calls, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	client, err := cms.New(cms.Config{BaseURL: sim.URL(), Credentials: creds, CAFile: sim.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	var call cmssim.Call
	for _, c := range sim.Schedule().Calls(1, 1, day, day.Add(10*time.Minute), cmssim.DirectionBoth) {
		if c.Answered() && c.IVRSeconds > 1 {
			call = c
			break
		}
	}
	if call.CallID == "" {
		t.Fatal("no answered inbound call in the schedule")
	}
	var first []time.Duration
	q := QueueBasicQuery(client, "run-t", Tracking{
		Track:       func(since, at time.Time) bool { return since.IsZero() || at.Sub(since) < time.Hour },
		FirstAnswer: func(d time.Duration) { first = append(first, d) },
	})
	it := pipeline.Item{Key: call.Key(), EnqueuedAt: time.Now().Add(-time.Second)}
	ask := func(at time.Time) pipeline.Answer[transform.Row] {
		t.Helper()
		clock.Store(at.UnixNano())
		a, v, err := q(t.Context(), it)
		if v != pool.Answered || err != nil {
			t.Fatalf("at %s: verdict %v, %v", at.Sub(call.WaitBegin), v, err)
		}
		return a
	}

	ivr := ask(call.WaitBegin.Add(time.Second))
	if ivr.Outcome != outcome.Tracked || ivr.Kept == nil || len(ivr.Kept.Last) == 0 || *ivr.Row.DeviceType != 3 {
		t.Fatalf("first live answer: %+v", ivr)
	}
	it.Live, it.Answered = ivr.Kept, true
	atAgent := call.WaitBegin.Add(time.Duration(call.IVRSeconds+call.QueueSeconds+call.RingSeconds+1) * time.Second)
	agent := ask(atAgent)
	if agent.Outcome != outcome.Tracked || !agent.Kept.Since.Equal(ivr.Kept.Since) || *agent.Row.DeviceType != 2 {
		t.Fatalf("live at the agent: %+v (since %v, first %v)", agent, agent.Kept.Since, ivr.Kept.Since)
	}
	it.Live = agent.Kept
	end := ask(call.CallEnd.Add(time.Second))
	if end.Outcome != outcome.Loaded || !end.Closing || *end.Row.DeviceType != 2 || !end.Row.FetchedAt.Equal(agent.Kept.LastAt) {
		t.Fatalf("after the end: %+v; want the closing row of the last live answer", end)
	}
	if len(first) != 1 || first[0] <= 0 {
		t.Fatalf("first-answer latencies %v, want one", first)
	}
}
