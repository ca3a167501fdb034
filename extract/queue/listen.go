package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// listener keeps a dedicated connection (not one of the pool's: it blocks
// for as long as nothing is inserted) LISTENing on NotifyChannel and raises
// wake for each notification. A lost connection is re-made with backoff;
// each (re)connection raises wake once, since notifications sent while it
// was down are lost. The consumer polls meanwhile, so nothing waits long.
type listener struct {
	cfg       *pgx.ConnConfig
	log       zerolog.Logger
	wake      chan struct{} // buffered 1: a pending wake-up is never lost
	connected atomic.Bool
	done      chan struct{}
}

func startListener(ctx context.Context, cfg *pgx.ConnConfig, log zerolog.Logger) *listener {
	l := &listener{cfg: cfg, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go l.run(ctx)
	return l
}

func (l *listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// drain forgets a pending wake-up: the claim about to run sees every row
// committed before it.
func (l *listener) drain() {
	select {
	case <-l.wake:
	default:
	}
}

func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 10*time.Second) {
		err := l.listen(ctx)
		l.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn().Err(err).Dur("retry_in", wait).Msg("queue listener lost its connection; polling until it is back")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// listen connects, LISTENs and relays notifications until the connection
// fails or ctx ends.
func (l *listener) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen %s: %w", NotifyChannel, err)
	}
	l.connected.Store(true)
	l.signal() // whatever was inserted while not listening
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for %s: %w", NotifyChannel, err)
		}
		if n.Channel == NotifyChannel {
			l.signal()
		}
	}
}

// errClosed is returned by a follower's Next after Close.
var errClosed = errors.New("queue consumer is closed")
