package cmssim

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGeneratorTiming runs a simulated hour on the fake clock: every call of
// every VDN is emitted once, in start order, exactly when the clock reaches
// its start, and is live then.
func TestGeneratorTiming(t *testing.T) {
	t.Parallel()
	from := day.Add(10*time.Hour + 250*time.Millisecond)
	until := day.Add(11 * time.Hour)
	clock := newFakeClock(from.Add(-3 * time.Second))
	s := mustSchedule(t, 4, testCalls(clock))
	g, err := NewGenerator(GeneratorConfig{Schedule: s, From: from, Until: until, Sleep: clock.Sleep})
	must(t, err)
	var got []Call
	st, err := g.Run(t.Context(), func(_ context.Context, c Call) error {
		if now := clock.Now(); !now.Equal(c.WaitBegin) {
			t.Fatalf("%s emitted at %v, starts %v", c.CallID, now, c.WaitBegin)
		}
		if _, ok := c.LiveAt(clock.Now()); !ok {
			t.Fatalf("%s not live when emitted", c.CallID)
		}
		got = append(got, c)
		return nil
	})
	must(t, err)
	var want []Call
	for _, v := range s.Config().VDNs {
		want = append(want, s.Calls(v.CCID, v.VDN, from, until.Add(-time.Millisecond), DirectionBoth)...)
	}
	slices.SortStableFunc(want, func(a, b Call) int {
		return cmp.Or(a.WaitBegin.Compare(b.WaitBegin), cmp.Compare(a.VDN, b.VDN), strings.Compare(a.CallID, b.CallID))
	})
	if !slices.EqualFunc(got, want, callsEqual) || st.Emitted != int64(len(want)) || st.MaxLag != 0 || len(want) < 400 {
		t.Errorf("emitted %d (stats %+v), want %d", len(got), st, len(want))
	}
	if now := clock.Now(); now.Before(want[len(want)-1].WaitBegin) || now.After(until) {
		t.Errorf("clock ends at %v", now)
	}
}

// TestGeneratorLagAndErrors: a slow callback makes later calls late (and
// says so), an error stops the run, a cancelled context ends it quietly.
func TestGeneratorLagAndErrors(t *testing.T) {
	t.Parallel()
	from := day.Add(10 * time.Hour)
	clock := newFakeClock(from)
	s := mustSchedule(t, 4, testCalls(clock))
	g, err := NewGenerator(GeneratorConfig{Schedule: s, From: from, Until: from.Add(10 * time.Minute), Sleep: clock.Sleep})
	must(t, err)
	n := 0
	st, err := g.Run(t.Context(), func(ctx context.Context, c Call) error {
		n++
		clock.Sleep(ctx, time.Minute) // a very slow producer
		return nil
	})
	if err != nil || st.MaxLag < 30*time.Second || st.Emitted != int64(n) {
		t.Errorf("slow callback: stats %+v err %v", st, err)
	}

	boom := errors.New("database gone")
	g, err = NewGenerator(GeneratorConfig{Schedule: s, From: from, Sleep: clock.Sleep})
	must(t, err)
	st, err = g.Run(t.Context(), func(context.Context, Call) error { return boom })
	if !errors.Is(err, boom) || st.Emitted != 0 || !strings.Contains(err.Error(), "emit call 1/") {
		t.Errorf("failing callback: stats %+v err %v", st, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	st, err = g.Run(ctx, func(context.Context, Call) error {
		cancel()
		return ctx.Err()
	})
	if err != nil || st.Emitted != 0 {
		t.Errorf("cancelled: stats %+v err %v", st, err)
	}

	// Real time, default sleep: the clock is time.Now; a call starting
	// shortly is emitted once it starts.
	cfg := testCalls(clock)
	cfg.Now = nil
	cfg.CallsPerMinute = 600
	wall := mustSchedule(t, 4, cfg)
	g, err = NewGenerator(GeneratorConfig{Schedule: wall})
	must(t, err)
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var first Call
	_, err = g.Run(ctx, func(_ context.Context, c Call) error {
		if time.Now().Before(c.WaitBegin) {
			t.Errorf("%s emitted before its start", c.CallID)
		}
		first = c
		cancel()
		return nil
	})
	if err != nil || first.CallID == "" {
		t.Errorf("real clock: %v, first %+v", err, first)
	}

	if _, err := NewGenerator(GeneratorConfig{}); err == nil {
		t.Error("NewGenerator without a schedule")
	}
	if _, err := NewGenerator(GeneratorConfig{Schedule: s, From: from, Until: from.Add(-time.Second)}); err == nil {
		t.Error("NewGenerator with Until before From")
	}
}
