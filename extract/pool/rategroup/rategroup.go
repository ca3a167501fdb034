// Package rategroup shares one rate between processes through PostgreSQL:
// runs started with the same --rate-group and the same database take their
// share of the group's rate, and a throttle event one of them sees cuts the
// rate of all.
//
// Design (after youtube/doorman's leased capacity, without a service): a
// row per member in cms.rate_group_member, refreshed by one heartbeat
// statement every Heartbeat. Each heartbeat also reads the live members (seen
// within Expiry) and the group row, so a process runs two statements a
// second, and one more per throttle event, never one per request.
//
//   - The group's rate is the lowest --rate among live members (a warning
//     names the group when they disagree); a member's share is rate *
//     weight / sum(live weights).
//   - A new member counts in everyone's sum at once but gets no share until
//     every other live member has heartbeated since it joined, so existing
//     members make room before it sends: the members' shares never add up to
//     more than the group's rate.
//   - A member's share is valid only while its heartbeats succeed: when it
//     has not been confirmed for Expiry (the time after which the others
//     count it out), it holds its requests; after LostAfter without the
//     database it stops the run. A member that was counted out rejoins as
//     new.
//   - A throttle event is one conditional UPDATE of the group row, applied
//     only when the last one is older than the cooldown; the others see its
//     sequence number at their next heartbeat and cut their own rate once.
package rategroup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// Limiter is the rate controller a member drives (*ratecontrol.Controller).
type Limiter interface {
	// SetCeiling sets this process's share; 0 holds every request.
	SetCeiling(rate float64)
	// GroupCut applies a throttle event another member saw at time at.
	GroupCut(at time.Time) bool
	// Stop ends the run: every wait returns an error wrapping err.
	Stop(err error)
}

// Config of a group member.
type Config struct {
	// Name is the group (--rate-group). Required.
	Name string
	// Pool is the database the group lives in (schema cms migrated). Required.
	Pool *pgxpool.Pool
	// Rate is this process's --rate. Required, above 0.
	Rate float64
	// Weight sets this member's share relative to the others. Default 1.
	Weight float64
	// RunID names the member (with a random suffix) in its row.
	RunID string
	// Heartbeat is the time between two heartbeats. Default 500ms.
	Heartbeat time.Duration
	// Expiry is how long a member stays live without a heartbeat. Default 3s.
	Expiry time.Duration
	// LostAfter stops the run when heartbeats have failed this long. Default 30s.
	LostAfter time.Duration
	// Logger receives the disagreement warning and heartbeat failures.
	Logger zerolog.Logger
	// Now is a seam for tests. Default time.Now.
	Now func() time.Time
}

// Defaults, declared once.
const (
	DefaultWeight    = 1.0
	DefaultHeartbeat = 500 * time.Millisecond
	DefaultExpiry    = 3 * time.Second
	DefaultLostAfter = 30 * time.Second

	// admissionMargin covers the gap between a statement's clock and the
	// snapshot it read: a newcomer waits for heartbeats clearly after it joined.
	admissionMargin = 100 * time.Millisecond
	// deadAfter removes the rows of members that died without leaving.
	deadAfter = time.Minute
)

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("rate-group: is empty")
	case len(c.Name) > 200:
		return errors.New("rate-group: longer than 200 characters")
	case c.Pool == nil:
		return errors.New("rate-group: needs a database (--database-url or DATABASE_URL)")
	case !(c.Rate > 0):
		return errors.New("rate-group: needs a --rate above 0 to share")
	case c.Weight < 0:
		return errors.New("rate group weight: must be above 0")
	case c.Heartbeat < 0, c.Expiry < 0, c.LostAfter < 0:
		return errors.New("rate group heartbeat, expiry, lost-after: must not be negative")
	}
	cfg := c.withDefaults()
	if cfg.Expiry < 2*cfg.Heartbeat {
		return fmt.Errorf("rate group expiry %v: must be at least two heartbeats (%v)", cfg.Expiry, cfg.Heartbeat)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Weight == 0 {
		c.Weight = DefaultWeight
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Expiry == 0 {
		c.Expiry = DefaultExpiry
	}
	if c.LostAfter == 0 {
		c.LostAfter = DefaultLostAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Stats is a snapshot for the summary.
type Stats struct {
	Name      string
	MemberID  string
	Members   int     // live members at the last heartbeat, this one included
	GroupRate float64 // the lowest --rate among them
	Share     float64 // this member's share; 0 while it waits for admission
	Admitted  bool
	// Events counts throttle events this member recorded for the group;
	// Received counts those of other members it applied.
	Events, Received int64
}

// Group is this process's membership in a rate group.
type Group struct {
	cfg      Config
	memberID string
	log      zerolog.Logger
	events   chan time.Duration // cooldowns of local throttle events to record

	lim    Limiter
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	stats     Stats
	seenSeq   int64
	lastOK    time.Time // last successful heartbeat (local clock)
	held      bool      // the share was withdrawn because heartbeats failed
	disagreed string    // the last disagreement warned about
}

// New validates cfg and prepares a member; nothing touches the database
// before Join. Throttled may be called from the start.
func New(cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	suffix, err := randomSuffix()
	if err != nil {
		return nil, fmt.Errorf("rate group member id: %w", err)
	}
	id := suffix
	if cfg.RunID != "" {
		id = cfg.RunID + "-" + suffix
	}
	g := &Group{
		cfg: cfg, memberID: id, events: make(chan time.Duration, 1),
		log: cfg.Logger.With().Str("rate_group", cfg.Name).Logger(),
	}
	g.stats.Name, g.stats.MemberID = cfg.Name, id
	return g, nil
}

func randomSuffix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Throttled records a throttle event this process detected (install it as
// ratecontrol.Config.OnThrottle). It never blocks: events that come while
// one is being recorded are the same event.
func (g *Group) Throttled(cooldown time.Duration) {
	select {
	case g.events <- cooldown:
	default:
	}
}

// ErrNotMigrated is returned by Join when the group tables are missing.
var ErrNotMigrated = errors.New(`rate group tables are missing: run "etl migrate" first`)

// Join registers this member, holds lim until the member has its share,
// and keeps heartbeating until Leave. The first heartbeat runs before Join
// returns; a member alone in its group has its share at once.
func (g *Group) Join(ctx context.Context, lim Limiter) error {
	g.lim = lim
	lim.SetCeiling(0)
	host, _ := os.Hostname()
	var seq int64
	err := pgx.BeginFunc(ctx, g.cfg.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO cms.rate_group (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, g.cfg.Name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM cms.rate_group_member WHERE group_name = $1 AND seen_at < clock_timestamp() - $2::interval`,
			g.cfg.Name, deadAfter); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO cms.rate_group_member (group_name, member_id, run_id, host, pid, rate, weight)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, g.cfg.Name, g.memberID, g.cfg.RunID, host, os.Getpid(), g.cfg.Rate, g.cfg.Weight); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT cut_seq FROM cms.rate_group WHERE name = $1`, g.cfg.Name).Scan(&seq)
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") { // undefined table or schema
			return fmt.Errorf("join rate group %q: %w", g.cfg.Name, ErrNotMigrated)
		}
		return fmt.Errorf("join rate group %q: %w", g.cfg.Name, err)
	}
	g.mu.Lock()
	g.seenSeq = seq
	g.lastOK = g.cfg.Now()
	g.mu.Unlock()
	if err := g.heartbeat(ctx); err != nil {
		// Do not leave a member row behind: the others would share with a
		// member that never runs until it expires.
		if _, derr := g.cfg.Pool.Exec(context.WithoutCancel(ctx), `DELETE FROM cms.rate_group_member WHERE group_name = $1 AND member_id = $2`,
			g.cfg.Name, g.memberID); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("join rate group %q: %w", g.cfg.Name, err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel, g.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { g.loop(lctx) })
	wg.Go(func() { g.watch(lctx) })
	go func() { wg.Wait(); close(g.done) }()
	return nil
}

// loop heartbeats and records this member's throttle events.
func (g *Group) loop(ctx context.Context) {
	t := time.NewTicker(g.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case cooldown := <-g.events:
			g.record(ctx, cooldown)
		case <-t.C:
			if err := g.heartbeat(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn().Err(err).Msg("rate group heartbeat failed")
			}
		}
	}
}

// watch withdraws the share once the other members may have counted this
// one out (its heartbeats failing or hanging), and stops the run after
// LostAfter without one.
func (g *Group) watch(ctx context.Context) {
	t := time.NewTicker(g.cfg.Heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		since := g.cfg.Now().Sub(g.lastOK)
		if since >= g.cfg.Expiry-g.cfg.Heartbeat && !g.held {
			g.held = true
			g.stats.Admitted, g.stats.Share = false, 0
			g.lim.SetCeiling(0)
			g.log.Warn().Dur("since_last_heartbeat", since).
				Msg("rate group: no confirmed heartbeat; holding requests until the database confirms this member again")
		}
		g.mu.Unlock()
		if since >= g.cfg.LostAfter {
			g.lim.Stop(fmt.Errorf("rate group %q: no heartbeat for %s", g.cfg.Name, since.Round(time.Second)))
			return
		}
	}
}

// record makes a local throttle event the group's, unless another member
// recorded one within the cooldown (then this one is the same event).
func (g *Group) record(ctx context.Context, cooldown time.Duration) {
	sctx, cancel := context.WithTimeout(ctx, g.cfg.Expiry)
	defer cancel()
	var seq int64
	err := g.cfg.Pool.QueryRow(sctx, `
		UPDATE cms.rate_group SET cut_seq = cut_seq + 1, cut_at = clock_timestamp(), cut_by = $2
		WHERE name = $1 AND (cut_at IS NULL OR cut_at < clock_timestamp() - $3::interval)
		RETURNING cut_seq`, g.cfg.Name, g.memberID, cooldown).Scan(&seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		if ctx.Err() == nil {
			g.log.Warn().Err(err).Msg("record a throttle event for the rate group; the other members will not cut for it")
		}
	default:
		g.mu.Lock()
		g.seenSeq = max(g.seenSeq, seq)
		g.stats.Events++
		g.mu.Unlock()
	}
}

type member struct {
	id     string
	rate   float64
	weight float64
	seen   time.Time // last heartbeat, database clock
}

// heartbeat confirms this member, reads the live members and the group's
// last event, and applies what follows: the share, admission, a cut.
func (g *Group) heartbeat(ctx context.Context) error {
	// The others count from when this statement ran; so does the lease.
	start := g.cfg.Now()
	sctx, cancel := context.WithTimeout(ctx, g.cfg.Expiry)
	defer cancel()
	// The UPDATE's RETURNING gives this member's joined_at, reset when it
	// had been counted out; the SELECT reads the other rows as of the
	// statement's start (this member's own row with its previous heartbeat).
	rows, err := g.cfg.Pool.Query(sctx, `
		WITH me AS (
			UPDATE cms.rate_group_member
			SET joined_at = CASE WHEN seen_at < clock_timestamp() - $3::interval THEN clock_timestamp() ELSE joined_at END,
			    seen_at = clock_timestamp()
			WHERE group_name = $1 AND member_id = $2
			RETURNING joined_at
		)
		SELECT (SELECT joined_at FROM me), g.cut_seq,
		       coalesce(extract(epoch FROM clock_timestamp() - g.cut_at)::float8, 0),
		       m.member_id, m.rate, m.weight, m.seen_at
		FROM cms.rate_group g
		LEFT JOIN cms.rate_group_member m
		       ON m.group_name = g.name AND m.seen_at >= clock_timestamp() - $3::interval AND m.member_id <> $2
		WHERE g.name = $1`, g.cfg.Name, g.memberID, g.cfg.Expiry)
	if err != nil {
		return fmt.Errorf("rate group heartbeat: %w", err)
	}
	var (
		joined   *time.Time
		seq      int64
		cutAge   float64
		others   []member
		id       *string
		rate, wt *float64
		seen     *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&joined, &seq, &cutAge, &id, &rate, &wt, &seen}, func() error {
		if id != nil {
			others = append(others, member{id: *id, rate: *rate, weight: *wt, seen: *seen})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rate group heartbeat: %w", err)
	}
	if joined == nil {
		// Our row is gone (removed as dead after a long outage): join again.
		host, _ := os.Hostname()
		if _, err := g.cfg.Pool.Exec(sctx, `INSERT INTO cms.rate_group_member (group_name, member_id, run_id, host, pid, rate, weight)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			g.cfg.Name, g.memberID, g.cfg.RunID, host, os.Getpid(), g.cfg.Rate, g.cfg.Weight); err != nil {
			return fmt.Errorf("rate group rejoin: %w", err)
		}
		g.mu.Lock()
		g.lim.SetCeiling(0)
		g.lastOK, g.held = start, false
		g.stats.Admitted, g.stats.Share = false, 0
		g.mu.Unlock()
		return nil
	}

	groupRate, sum := g.cfg.Rate, g.cfg.Weight
	lo, hi := g.cfg.Rate, g.cfg.Rate
	admitted := true
	for _, m := range others {
		groupRate = min(groupRate, m.rate)
		lo, hi = min(lo, m.rate), max(hi, m.rate)
		sum += m.weight
		if !m.seen.After(joined.Add(admissionMargin)) {
			admitted = false // it has not made room for this member yet
		}
	}
	share := 0.0
	if admitted {
		share = groupRate * g.cfg.Weight / sum
	}

	g.mu.Lock()
	g.lim.SetCeiling(share)
	g.lastOK, g.held = start, false
	g.stats.Members, g.stats.GroupRate, g.stats.Share, g.stats.Admitted = len(others)+1, groupRate, share, admitted
	newCut := seq > g.seenSeq
	g.seenSeq = max(g.seenSeq, seq)
	disagreement := ""
	if lo != hi {
		disagreement = fmt.Sprintf("%g-%g", lo, hi)
	}
	warn := disagreement != "" && disagreement != g.disagreed
	g.disagreed = disagreement
	g.mu.Unlock()

	if warn {
		g.log.Warn().Float64("lowest", lo).Float64("highest", hi).Float64("rate", g.cfg.Rate).
			Msgf("rate group %q: members disagree on --rate; the group runs at the lowest, %g/s", g.cfg.Name, lo)
	}
	if newCut {
		at := g.cfg.Now().Add(-time.Duration(cutAge * float64(time.Second)))
		if g.lim.GroupCut(at) {
			g.mu.Lock()
			g.stats.Received++
			g.mu.Unlock()
		}
	}
	return nil
}

// Leave stops heartbeating and removes this member, so the others take its
// share at their next heartbeat.
func (g *Group) Leave(ctx context.Context) error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	<-g.done
	g.cancel = nil
	if _, err := g.cfg.Pool.Exec(ctx, `DELETE FROM cms.rate_group_member WHERE group_name = $1 AND member_id = $2`,
		g.cfg.Name, g.memberID); err != nil {
		return fmt.Errorf("leave rate group %q: %w", g.cfg.Name, err)
	}
	return nil
}

// Stats returns a snapshot.
func (g *Group) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}
