package rategroup

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is one member: its controller (what its workers wait on) and group.
type proc struct {
	rc  *ratecontrol.Controller
	g   *Group
	log *syncBuffer
}

func join(t *testing.T, db *pgxpool.Pool, name string, rate float64, tweak ...func(*Config)) *proc {
	t.Helper()
	p := &proc{log: &syncBuffer{}}
	cfg := Config{Name: name, Pool: db, Rate: rate, RunID: "test", Logger: zerolog.New(p.log)}
	for _, f := range tweak {
		f(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ratecontrol.New(ratecontrol.Config{Rate: rate, OnThrottle: g.Throttled})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Join(t.Context(), rc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Leave(context.WithoutCancel(t.Context())) })
	p.rc, p.g = rc, g
	return p
}

func (p *proc) ceiling() float64 { return p.rc.Stats().Ceiling }

// eventually polls cond every 10 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// sumSampler records the highest sum of the members' ceilings.
func sumSampler(t *testing.T, procs ...*proc) (peak func() float64) {
	var mu sync.Mutex
	var max float64
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var sum float64
			for _, p := range procs {
				sum += p.ceiling()
			}
			mu.Lock()
			max = maxf(max, sum)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() float64 { mu.Lock(); defer mu.Unlock(); return max }
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

func TestMembersShareTheRateAndNeverExceedIt(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Migrated(t)
	a := join(t, db, "nightly", 300)
	if got := a.ceiling(); got != 300 {
		t.Fatalf("a member alone has %v, want the whole 300", got)
	}
	peak := sumSampler(t, a)
	b := join(t, db, "nightly", 300)
	peakAB := sumSampler(t, a, b)
	if b.g.Stats().Admitted {
		t.Fatal("the newcomer was admitted before the other member made room")
	}
	eventually(t, 3*time.Second, "newcomer admitted", func() bool { return b.g.Stats().Admitted })
	eventually(t, time.Second, "shares of 150", func() bool { return a.ceiling() == 150 && b.ceiling() == 150 })
	if p := max(peak(), peakAB()); p > 300+1e-9 {
		t.Fatalf("the members' shares added up to %v, over the group's 300", p)
	}
	if sa, sb := a.g.Stats(), b.g.Stats(); sa.Members != 2 || sb.Members != 2 || sa.GroupRate != 300 || sb.Share != 150 {
		t.Fatalf("stats %+v and %+v", sa, sb)
	}

	// A member that leaves gives its share back at the next heartbeat.
	if err := b.g.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 3*time.Second, "the whole rate back after a leave", func() bool { return a.ceiling() == 300 })
	t.Logf("share back %v after the other member left", took)
	if a.g.Stats().Members != 1 {
		t.Errorf("members %d after the other left", a.g.Stats().Members)
	}
}

func TestDeadMemberDropsOutWithinSeconds(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Migrated(t)
	a := join(t, db, "g", 200)
	b := join(t, db, "g", 200)
	eventually(t, 3*time.Second, "admitted", func() bool { return b.g.Stats().Admitted && a.ceiling() == 100 })
	// b dies: no more heartbeats, no leave.
	b.g.cancel()
	<-b.g.done
	took := eventually(t, 6*time.Second, "the dead member's share taken back", func() bool { return a.ceiling() == 200 })
	if took > DefaultExpiry+2*DefaultHeartbeat {
		t.Errorf("took %v, want within the expiry (%v) and a heartbeat", took, DefaultExpiry)
	}
	// Counted out, b must not send on its old share; heartbeating again it
	// is a newcomer and waits for a to make room.
	if err := b.g.heartbeat(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := b.g.Stats(); s.Admitted || b.ceiling() != 0 {
		t.Fatalf("a member counted out came back with a share: %+v, ceiling %v", s, b.ceiling())
	}
	eventually(t, 3*time.Second, "a made room", func() bool { return a.ceiling() == 100 })
	if err := b.g.heartbeat(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b.ceiling() != 100 {
		t.Fatalf("ceiling %v after a made room, want 100", b.ceiling())
	}
}

func TestThrottleEventCutsEveryMemberOnce(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Migrated(t)
	a := join(t, db, "g", 300)
	b := join(t, db, "g", 300)
	eventually(t, 3*time.Second, "admitted", func() bool { return b.g.Stats().Admitted && a.ceiling() == 150 })
	// Both see 429s at about the same time: one event for the group.
	a.rc.Observe(ratecontrol.Observation{Signal: ratecontrol.Throttle})
	b.rc.Observe(ratecontrol.Observation{Signal: ratecontrol.Throttle})
	time.Sleep(3 * DefaultHeartbeat)
	var seq int64
	if err := db.QueryRow(t.Context(), `SELECT cut_seq FROM cms.rate_group WHERE name = 'g'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.rc.Stats(), b.rc.Stats()
	if seq != 1 || sa.Cuts != 1 || sb.Cuts != 1 {
		t.Fatalf("cut_seq %d, cuts %d and %d; want one group event and one cut each", seq, sa.Cuts, sb.Cuts)
	}

	// Later, only a sees a 429: b cuts too, within a heartbeat or two.
	time.Sleep(1100 * time.Millisecond) // past the cooldown
	before := b.rc.Stats().Limit
	a.rc.Observe(ratecontrol.Observation{Signal: ratecontrol.Throttle})
	eventually(t, 2*time.Second, "b cut for a's event", func() bool { return b.rc.Stats().GroupCuts == 1 })
	if after := b.rc.Stats().Limit; after >= before {
		t.Fatalf("b's limit went from %v to %v", before, after)
	}
	if s := b.g.Stats(); s.Received != 1 {
		t.Fatalf("b stats %+v", s)
	}
}

func TestLowestRateWinsWithAWarning(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Migrated(t)
	a := join(t, db, "mixed", 300)
	b := join(t, db, "mixed", 100)
	eventually(t, 3*time.Second, "shares of the lowest rate", func() bool { return a.ceiling() == 50 && b.ceiling() == 50 })
	for _, p := range []*proc{a, b} {
		eventually(t, 2*time.Second, "warning", func() bool {
			l := p.log.String()
			return strings.Contains(l, `rate group \"mixed\": members disagree on --rate`) && strings.Contains(l, "100/s")
		})
	}
}

func TestJoinNeedsTheSchema(t *testing.T) {
	t.Parallel()
	db, err := pgxpool.New(t.Context(), pgtest.ConnString(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	g, err := New(Config{Name: "g", Pool: db, Rate: 10})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := ratecontrol.New(ratecontrol.Config{Rate: 10})
	if err := g.Join(t.Context(), rc); !errors.Is(err, ErrNotMigrated) || !strings.Contains(err.Error(), "etl migrate") {
		t.Fatalf("Join = %v, want ErrNotMigrated", err)
	}
}

// A member that loses the database holds its requests once the others may
// have counted it out, and stops the run after LostAfter.
func TestLostDatabaseHoldsThenStops(t *testing.T) {
	t.Parallel()
	_, url := pgtest.Migrated(t)
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	p := join(t, db, "g", 50, func(c *Config) {
		c.Heartbeat, c.Expiry, c.LostAfter = 100*time.Millisecond, 500*time.Millisecond, 1500*time.Millisecond
	})
	if p.ceiling() != 50 {
		t.Fatalf("ceiling %v", p.ceiling())
	}
	db.Close()
	took := eventually(t, 2*time.Second, "held", func() bool { return p.ceiling() == 0 })
	if took > 600*time.Millisecond {
		t.Errorf("held after %v; the others count it out after 500 ms", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := p.rc.Wait(ctx); !errors.Is(err, ratecontrol.ErrStopped) || !strings.Contains(err.Error(), `rate group "g"`) {
		t.Fatalf("Wait = %v, want the run stopped naming the group", err)
	}
}

// counter counts the statements a pool sends.
type counter struct{ n atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A member costs a couple of statements a second, however many requests
// its workers make.
func TestStatementsPerSecond(t *testing.T) {
	t.Parallel()
	_, url := pgtest.Migrated(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	stmts := &counter{}
	cfg.ConnConfig.Tracer = stmts
	db, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	p := join(t, db, "g", 1000)
	before := stmts.n.Load()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	var requests int
	for p.rc.Wait(ctx) == nil {
		requests++
		p.rc.Observe(ratecontrol.Observation{Signal: ratecontrol.OK})
	}
	n := stmts.n.Load() - before
	t.Logf("%d statements for %d requests in 3 s", n, requests)
	if n > 3*3 || requests < 1000 {
		t.Fatalf("%d statements for %d requests in 3 s; want at most 3 a second, and the requests to flow", n, requests)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Pool: &pgxpool.Pool{}, Rate: 1}, "rate-group: is empty"},
		{Config{Name: "g", Rate: 1}, "--database-url"},
		{Config{Name: "g", Pool: &pgxpool.Pool{}}, "--rate above 0"},
		{Config{Name: "g", Pool: &pgxpool.Pool{}, Rate: 1, Heartbeat: time.Second, Expiry: time.Second}, "expiry"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}
