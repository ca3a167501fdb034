package adapters

import (
	"context"
	"errors"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/transform"
)

// Tracking is how a queue run treats live answers (see QueueBasicQuery).
type Tracking struct {
	// Track reports whether a live answer arrived at answerAt keeps its
	// call tracked; since is when the call first answered live (zero for
	// its first live answer): queue.Queue.Tracking. nil: one answer per call.
	Track func(since, answerAt time.Time) bool
	// FirstAnswer, when set, hears how long after its enqueue a call got
	// its first answer (live or "no data").
	FirstAnswer func(time.Duration)
}

// QueueBasicQuery is BasicQuery for calls from the queue, which may be
// tracked while they are live: a live answer that keeps its call tracked is
// outcome.Tracked, its row an interim state and its answer kept for the next
// poll; the answer "no data" for a tracked call (it ended) makes the call's
// final row from its last live answer, for the outputs that take one row per
// call. It also reports each call's first answer (Tracking.FirstAnswer).
func QueueBasicQuery(c *cms.Client, runID string, t Tracking) pipeline.Query[transform.Row] {
	return func(ctx context.Context, it pipeline.Item) (pipeline.Answer[transform.Row], pool.Verdict, error) {
		res := cms.Fetch(ctx, c, cms.BasicCallInfo, cms.Request{Key: it.Key})
		a, v, err := answerOf[cms.Record, transform.Row](res)
		if t.FirstAnswer != nil && v == pool.Answered && !it.Answered && !it.EnqueuedAt.IsZero() && !res.FetchedAt.IsZero() {
			t.FirstAnswer(res.FetchedAt.Sub(it.EnqueuedAt))
		}
		switch {
		case a.Outcome == outcome.Loaded:
			a.Row, a.Unknown = transform.ToRow(transform.Input{Key: it.Key, Record: res.Record, Raw: res.Raw, FetchedAt: res.FetchedAt, RunID: runID})
			a.Problems = res.Record.Problems
			var since time.Time
			if it.Live != nil {
				since = it.Live.Since
			}
			if t.Track != nil && t.Track(since, res.FetchedAt) {
				if since.IsZero() {
					since = res.FetchedAt
				}
				a.Outcome = outcome.Tracked
				a.Kept = &pipeline.Live{Since: since, Last: res.Raw, LastAt: res.FetchedAt}
			}
		case a.Outcome == outcome.NoData && it.Live != nil:
			// The tracked call ended: its row is its last live answer.
			rec, derr := cms.DecodeRecord(it.Live.Last)
			if derr != nil {
				a.Outcome, a.Reason = outcome.Failed, "the tracked call's kept answer cannot be decoded: "+derr.Error()
				return a, v, errors.New(a.Reason)
			}
			a.Outcome, a.Closing = outcome.Loaded, true
			a.Row, a.Unknown = transform.ToRow(transform.Input{Key: it.Key, Record: rec, Raw: it.Live.Last, FetchedAt: it.Live.LastAt, RunID: runID})
			a.Problems = rec.Problems
		}
		return a, v, err
	}
}

// Probe asks the API whether it answers again after an outage (the pool's
// Config.Probe): a ping that reaches it and is accepted. A refused signature
// or a certificate that does not verify is fatal, as for a call.
func Probe(c *cms.Client) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		p := c.Ping(ctx)
		switch {
		case p.SignatureAccepted: // TLS as the run was configured
			return nil
		case p.HTTPStatus == 401 || p.HTTPStatus == 403 || (p.Reachable && p.HTTPStatus == 0 && p.Err != nil):
			// Refused credentials, or a certificate presented that does not verify.
			return &pool.FatalError{Err: &FatalAnswer{msg: "fatal answer to the probe of CC-CMS after an outage: " + p.String(), err: p.Err}}
		case p.Err != nil:
			return p.Err
		}
		return errors.New(p.String())
	}
}
