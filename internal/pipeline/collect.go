package pipeline

import (
	"context"
	"time"

	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/outcome"
)

// collected is what the committer counted.
type collected struct {
	counts   outcome.Counts
	files    int
	failures failureCodes
}

// collect turns answers into rows and settlements and hands them to the
// committer in batches, at least every CommitInterval or CommitRows rows. It
// always drains both channels, so upstream never blocks.
func (p *Pipeline[R]) collect(ctx context.Context, results <-chan pool.Done[Item, Answer[R]], direct <-chan Settlement, abort func(error)) (collected, error) {
	cfg := p.cfg
	c := p.startCommitter(ctx, abort)
	p.comm.Store(c)
	var (
		cur         = c.newBatch()
		unprocessed int64 // rows that arrived after a failed commit
		lastCommit  = time.Now()
	)
	ticker := time.NewTicker(min(cfg.CommitInterval, time.Second))
	defer ticker.Stop()

	submit := func() {
		if len(cur.settled) > 0 {
			cur = c.submit(cur)
		}
		lastCommit = time.Now()
	}
	add := func(s Settlement) {
		p.settled.Add(1)
		if c.failed.Load() {
			unprocessed++
			return
		}
		cur.add(s)
	}

	for results != nil || direct != nil {
		select {
		case d, ok := <-results:
			if !ok {
				results = nil
				continue
			}
			s := p.settle(d)
			if (s.Outcome == outcome.Loaded || s.Outcome == outcome.Tracked) && !c.failed.Load() {
				for i := range cur.rows {
					if d.Item.need.has(i) && p.takes(i, &d.Answer) {
						cur.rows[i] = append(cur.rows[i], d.Answer.Row)
					}
				}
			}
			add(s)
		case s, ok := <-direct:
			if !ok {
				direct = nil
				continue
			}
			add(s)
		case <-ticker.C:
			if time.Since(lastCommit) >= cfg.CommitInterval {
				submit()
			}
			continue
		}
		if cur.full(cfg.CommitRows) {
			submit()
		}
	}
	submit()
	return c.close(unprocessed)
}

// takes reports whether output i takes the row of a: outputs that take one
// row per call skip a tracked call's interim states and take the row made
// when it ends, which the others have had already.
func (p *Pipeline[R]) takes(i int, a *Answer[R]) bool {
	_, final := p.cfg.Outputs[i].(FinalRowsOnly)
	switch {
	case a.Outcome == outcome.Tracked:
		return !final
	case a.Closing:
		return final
	}
	return true
}

// settle maps a pool result to its settlement, counting what the answer
// reports about unknown codes and uninterpretable values.
func (p *Pipeline[R]) settle(d pool.Done[Item, Answer[R]]) Settlement {
	a := &d.Answer
	s := Settlement{Item: d.Item, Outcome: a.Outcome, Retry: a.Retry, ResultCode: a.ResultCode,
		HTTPStatus: a.HTTPStatus, Attempts: a.Attempts, Reason: a.Reason, Kept: a.Kept}
	if !d.Processed || a.Outcome == "" {
		s.Outcome = outcome.Unprocessed
		return s
	}
	for _, u := range a.Unknown {
		if u.Problem() {
			p.problems.Add(1)
			continue
		}
		p.unknown.add(u.Field, u.Code)
	}
	if len(a.Problems) > 0 {
		p.problems.Add(int64(len(a.Problems)))
		p.cfg.Logger.Warn().Str("call", d.Item.Key.String()).Strs("problems", a.Problems).Msg("fields could not be interpreted; written as NULL")
	}
	return s
}
