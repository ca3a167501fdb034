package cmssim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// GeneratorConfig configures a Generator.
type GeneratorConfig struct {
	// Schedule supplies the calls (all its VDNs) and the clock. Required.
	// Its CallsPerMinute is the rate at which calls are emitted.
	Schedule *Schedule
	// From is the first start emitted (inclusive). Default: the clock's now
	// when Run starts.
	From time.Time
	// Until ends the run before the first call starting at or after it.
	// Zero: run until the context ends.
	Until time.Time
	// Sleep waits d or until ctx ends (then it returns ctx's error).
	// Default: a real timer. Tests pass one that advances a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// GeneratorStats describe a finished run.
type GeneratorStats struct {
	Emitted int64
	// MaxLag is the largest delay between a call's start and its emission
	// (a slow callback makes the calls after it late).
	MaxLag time.Duration
}

// Generator emits a schedule's calls at their start times, through a
// callback: a live stream of new calls for a queue producer, a demo or a
// benchmark of a follower.
type Generator struct {
	cfg GeneratorConfig
}

// NewGenerator validates cfg.
func NewGenerator(cfg GeneratorConfig) (*Generator, error) {
	if cfg.Schedule == nil {
		return nil, errors.New("cmssim generator config: Schedule is nil")
	}
	if !cfg.Until.IsZero() && !cfg.From.IsZero() && cfg.Until.Before(cfg.From) {
		return nil, fmt.Errorf("cmssim generator config: Until %v is before From %v", cfg.Until, cfg.From)
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	return &Generator{cfg: cfg}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run emits every call of the schedule's VDNs with a start in [From,
// Until) in start order (then ccId, vdn, callId), each once the clock
// reaches its start. It returns when Until is reached or ctx ends (both
// normal ends: the error is nil), or with emit's first error.
func (g *Generator) Run(ctx context.Context, emit func(context.Context, Call) error) (GeneratorStats, error) {
	var st GeneratorStats
	s := g.cfg.Schedule
	from := g.cfg.From
	if from.IsZero() {
		from = s.Now()
	}
	var batch []head
	for sec := floorDiv(from.UnixMilli(), 1000); ; sec++ {
		if !g.cfg.Until.IsZero() && sec*1000 >= g.cfg.Until.UnixMilli() {
			return st, nil
		}
		batch = batch[:0]
		for _, v := range s.cfg.VDNs {
			batch = s.heads(v.CCID, v.VDN, sec, batch)
		}
		slices.SortFunc(batch, func(a, b head) int {
			return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.ccID, b.ccID), cmp.Compare(a.vdn, b.vdn), cmp.Compare(a.seq, b.seq))
		})
		if len(batch) == 0 {
			// Wait out an empty second so a quiet schedule does not spin ahead
			// of the clock.
			if err := g.waitUntil(ctx, time.UnixMilli((sec+1)*1000)); err != nil {
				return st, nil
			}
			continue
		}
		for i := range batch {
			c := s.call(&batch[i])
			if c.WaitBegin.Before(from) {
				continue
			}
			if !g.cfg.Until.IsZero() && !c.WaitBegin.Before(g.cfg.Until) {
				return st, nil
			}
			if err := g.waitUntil(ctx, c.WaitBegin); err != nil {
				return st, nil
			}
			st.MaxLag = max(st.MaxLag, s.Now().Sub(c.WaitBegin))
			if err := emit(ctx, c); err != nil {
				if ctx.Err() != nil {
					return st, nil
				}
				return st, fmt.Errorf("emit call %s: %w", c.Key(), err)
			}
			st.Emitted++
		}
	}
}

// waitUntil sleeps until the clock reaches t; an error means ctx ended.
func (g *Generator) waitUntil(ctx context.Context, t time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := t.Sub(g.cfg.Schedule.Now())
		if d <= 0 {
			return nil
		}
		if err := g.cfg.Sleep(ctx, d); err != nil {
			return err
		}
	}
}
