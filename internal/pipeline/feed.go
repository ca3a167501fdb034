package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/internal/outcome"
)

// feed reads the source, settles what needs no call (rejected, duplicate,
// already held by every output) directly and sends the rest to the pool.
func (p *Pipeline[R]) feed(ctx context.Context, work chan<- Item, direct chan<- Settlement) error {
	var seen *extract.DigestSet
	if p.cfg.Dedup {
		var err error
		if seen, err = extract.NewDigestSet(0); err != nil {
			return fmt.Errorf("remember input keys: %w", err)
		}
		defer seen.Close()
	}
	all := outputSet(1)<<len(p.cfg.Outputs) - 1
	var holders []int // outputs that can say what they hold
	for i, o := range p.cfg.Outputs {
		if _, ok := o.(Holder); ok {
			holders = append(holders, i)
		}
	}
	batch := make([]Item, 0, p.cfg.Lookahead)
	send := func(it Item) {
		if ctx.Err() == nil {
			select {
			case work <- it:
				return
			case <-ctx.Done():
			}
		}
		// Read but not sent: account for it so nothing is silently lost.
		direct <- Settlement{Item: it, Outcome: outcome.Unprocessed}
	}
	// unprocessed accounts for rows read but not yet sent when reading stops.
	unprocessed := func() {
		for _, it := range batch {
			direct <- Settlement{Item: it, Outcome: outcome.Unprocessed}
		}
		batch = batch[:0]
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		for i := range batch {
			batch[i].need = all
		}
		if len(holders) > 0 {
			for _, o := range holders {
				held, err := p.cfg.Outputs[o].(Holder).Holds(ctx, batch)
				if err != nil {
					unprocessed()
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("look up what %s already holds: %w", p.cfg.Outputs[o].Name(), err)
				}
				for i, h := range held {
					if h {
						batch[i].need &^= 1 << o
					}
				}
			}
		}
		for _, it := range batch {
			if it.need == 0 {
				direct <- Settlement{Item: it, Outcome: outcome.AlreadyLoaded}
				continue
			}
			send(it)
		}
		batch = batch[:0]
		return nil
	}
	buffered, _ := p.cfg.Source.(Buffered)
	for ctx.Err() == nil {
		if buffered != nil && len(batch) > 0 && buffered.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		it, err := p.cfg.Source.Next(ctx)
		if errors.Is(err, io.EOF) {
			p.inputDone.Store(true)
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			unprocessed()
			return fmt.Errorf("read input: %w", err)
		}
		p.read.Add(1)
		if it.Err != nil {
			// The reason keeps the error's text; the error itself would only
			// hold memory until the commit.
			reason := it.Err.Error()
			it.Err = nil
			direct <- Settlement{Item: it, Outcome: outcome.Rejected, Reason: reason}
			continue
		}
		if seen != nil {
			added, err := seen.Add(it.Key.Digest())
			if err != nil {
				direct <- Settlement{Item: it, Outcome: outcome.Unprocessed}
				unprocessed()
				return fmt.Errorf("remember input keys: %w", err)
			}
			if !added {
				direct <- Settlement{Item: it, Outcome: outcome.Duplicate, Reason: "repeats an earlier row"}
				continue
			}
		}
		batch = append(batch, it)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
