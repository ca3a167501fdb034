package discover

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms"
)

// fakeCalls is a Lister over a fixed list of calls, with injectable faults.
// The integration tests against the simulator (real HTTPS) live with the
// command; this one reaches the faults the simulator does not produce on
// demand (a count that changes, a slice that never adds up, a stop).
type fakeCalls struct {
	calls map[tallyKey][]time.Time // call start times per (vdn, inbound)
	// short makes pages of windows longer than shortAbove return fewer rows
	// than asked (the self-check must catch it and bisect).
	shortAbove time.Duration
	// drift makes the count of windows longer than driftAbove grow between
	// pages.
	driftAbove time.Duration
	// broken windows (by begin) answer a transient failure at brokenOffset.
	broken       map[time.Time]bool
	brokenOffset int
	stopAt       time.Time
	// sameIDs gives both directions the same call IDs (a call both passes list).
	sameIDs bool
	// bad replaces the listed rows of these calls (by index in calls) with
	// raw rows.
	bad map[int]string
	// overlap widens every window's end: the calls of its first part are
	// listed by two slices of the same pass.
	overlap time.Duration
	// jitter delays answers randomly, so concurrent passes finish in a
	// different order each run.
	jitter bool

	mu       sync.Mutex
	requests int
}

func (f *fakeCalls) List(ctx context.Context, q cms.ListRequest) cms.ListResult {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if f.jitter {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
	if q.Begin.Equal(f.stopAt) {
		return cms.ListResult{Class: cms.ClassFatal, HTTPStatus: 401, Message: "HTTP 401 Unauthorized: signature rejected"}
	}
	if f.broken[q.Begin] && q.Offset == f.brokenOffset {
		return cms.ListResult{Class: cms.ClassTransient, HTTPStatus: 503, Message: "HTTP 503 after 5 attempts"}
	}
	var ids []string
	dir := 0
	if q.Inbound && !f.sameIDs {
		dir = 1
	}
	var rows []string
	for i, at := range f.calls[tallyKey{q.VDN, q.Inbound}] {
		if !at.Before(q.Begin) && !at.After(q.End.Add(f.overlap)) {
			id := strconv.FormatInt(at.Unix(), 10) + "-" + strconv.Itoa(2*i+dir)
			ids = append(ids, id)
			row := `{"callId":"` + id + `","callType":"0"}`
			if b, ok := f.bad[i]; ok {
				row = b
			}
			rows = append(rows, row)
		}
	}
	count := int64(len(ids))
	span := q.End.Sub(q.Begin)
	if f.driftAbove > 0 && span > f.driftAbove {
		count += int64(q.Offset / q.Limit)
	}
	page := rows[min(q.Offset, len(rows)):min(q.Offset+q.Limit, len(rows))]
	if f.shortAbove > 0 && span > f.shortAbove && len(page) > 1 {
		page = page[:len(page)-1]
	}
	l := cms.Listing{Code: cms.CodeSuccess, Count: count, HasCount: true}
	for _, row := range page {
		l.Items = append(l.Items, []byte(row))
	}
	return cms.ListResult{Class: cms.ClassOK, Listing: l, FetchedAt: q.End}
}

// day is 2026-12-01 UTC; now is 2026-12-02 01:00 UTC.
var (
	day = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now = day.Add(25 * time.Hour)
)

// everyMinute puts n calls a minute from day 00:00 for hours hours.
func everyMinute(n, hours int) []time.Time {
	var out []time.Time
	for m := range hours * 60 {
		for i := range n {
			out = append(out, day.Add(time.Duration(m)*time.Minute+time.Duration(i*60/n)*time.Second))
		}
	}
	return out
}

func config(vdns ...int) Config {
	return Config{CCID: 1, VDNs: vdns, From: day, To: day.Add(24 * time.Hour), Inbound: true, Outbound: true,
		Now: func() time.Time { return now }}
}

// collect runs a discovery and returns the keys emitted per (vdn, inbound).
func collect(t *testing.T, cfg Config, l Lister) (map[tallyKey][]string, Result, error) {
	t.Helper()
	got, _, res, err := collectCalls(t, cfg, l)
	return got, res, err
}

// collectCalls runs a discovery and returns the keys emitted per (vdn,
// inbound) and every call in the order emitted.
func collectCalls(t *testing.T, cfg Config, l Lister) (map[tallyKey][]string, []Call, Result, error) {
	t.Helper()
	got := map[tallyKey][]string{}
	var calls []Call
	var last Slice
	res, err := Run(t.Context(), cfg, l, func(_ context.Context, s Slice) error {
		if last.End.After(s.Begin) && last.VDN == s.VDN || last.VDN > s.VDN {
			t.Errorf("slice vdn %d %v emitted after vdn %d %v", s.VDN, s.Begin, last.VDN, last.Begin)
		}
		last = s
		for _, c := range s.Calls {
			if c.Key.CCID != 1 || c.Key.VDN != s.VDN || c.Record == nil || c.BothDirections && !c.Inbound {
				t.Errorf("call %+v (inbound %v, both %v) in slice vdn %d", c.Key, c.Inbound, c.BothDirections, s.VDN)
			}
			k := tallyKey{s.VDN, c.Inbound}
			got[k] = append(got[k], c.Key.CallID)
			calls = append(calls, c)
		}
		return nil
	})
	return got, calls, res, err
}

func TestDiscoverFindsEveryCallAndReconciles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		short, drift   time.Duration
		wantBisections bool
	}{
		{"healthy", 0, 0, false},
		{"short pages", 10 * time.Minute, 0, true},
		{"count changes between pages", 0, 20 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeCalls{calls: map[tallyKey][]time.Time{
				{25, true}:  everyMinute(3, 24), // 180 an hour: two pages a slice
				{25, false}: everyMinute(1, 24),
				{26, true}:  everyMinute(2, 24),
			}, shortAbove: tt.short, driftAbove: tt.drift}
			got, res, err := collect(t, config(25, 26), f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed() {
				t.Fatalf("failures: %v", res.Failures)
			}
			for k, times := range f.calls {
				if len(got[k]) != len(times) {
					t.Errorf("vdn %d inbound %v: %d calls, want %d", k.vdn, k.inbound, len(got[k]), len(times))
				}
				if dup := len(got[k]) - len(slices.Compact(slices.Sorted(slices.Values(got[k])))); dup != 0 {
					t.Errorf("vdn %d inbound %v: %d duplicates", k.vdn, k.inbound, dup)
				}
			}
			bisections := 0
			for _, ta := range res.Tallies {
				bisections += ta.Bisections
				if ta.Kept != ta.Reported || ta.Slices == 0 && ta.Kept > 0 {
					t.Errorf("tally %+v: kept %d, reported %d", ta, ta.Kept, ta.Reported)
				}
			}
			if (bisections > 0) != tt.wantBisections {
				t.Errorf("bisections = %d, want some: %v", bisections, tt.wantBisections)
			}
			if !tt.wantBisections {
				// One page per 100 calls of a slice, at least one per slice:
				// 180 and 120 calls an hour take two, 60 and none one.
				if want := 24*2 + 24 + 24*2 + 24; f.requests != want {
					t.Errorf("requests = %d, want the minimum %d", f.requests, want)
				}
			}
		})
	}
}

// Only slices that ended at least SettleLag before now are asked; the rest
// are counted open. Zero asks every slice that has ended: an explicit
// --settle-lag 0 is not the default.
func TestDiscoverSkipsOpenSlices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lag        time.Duration
		open, done int
	}{
		{0, 0, 3},
		{time.Minute, 1, 2},
		{15 * time.Minute, 1, 2},
		{time.Hour, 1, 2}, // the second slice ends exactly an hour ago: closed
		{time.Hour + time.Millisecond, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.lag.String(), func(t *testing.T) {
			t.Parallel()
			f := &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: everyMinute(1, 24)}}
			cfg := config(25)
			cfg.Outbound = false
			cfg.SettleLag = tt.lag
			cfg.From, cfg.To = now.Add(-3*time.Hour), now // the last slice ends now
			_, res, err := collect(t, cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			if ta := res.Tallies[0]; ta.Open != tt.open || ta.Slices != tt.done {
				t.Fatalf("tally %+v: want %d slices asked, %d open", ta, tt.done, tt.open)
			}
		})
	}
}

// A page that fails after its retries fails its slice; the failure names
// the slice (VDN, direction, window) and the page's offset.
func TestFailedPageNamesItsOffset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		offset int
		want   string
	}{
		{0, "vdn 25 inbound 2026-12-01T05:00:00Z..2026-12-01T06:00:00Z: page at offset 0: HTTP 503 after 5 attempts"},
		{100, "vdn 25 inbound 2026-12-01T05:00:00Z..2026-12-01T06:00:00Z: page at offset 100: HTTP 503 after 5 attempts"},
		{200, "vdn 25 inbound 2026-12-01T05:00:00Z..2026-12-01T06:00:00Z: page at offset 200: HTTP 503 after 5 attempts"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.offset), func(t *testing.T) {
			t.Parallel()
			f := &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: everyMinute(4, 24)}, // 240 an hour: three pages
				broken: map[time.Time]bool{day.Add(5 * time.Hour): true}, brokenOffset: tt.offset}
			cfg := config(25)
			cfg.Outbound = false
			_, res, err := collect(t, cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failures) != 1 || res.Failures[0] != tt.want {
				t.Fatalf("failures = %q, want %q", res.Failures, tt.want)
			}
		})
	}
}

func TestDiscoverReportsSlicesThatFail(t *testing.T) {
	t.Parallel()
	f := &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: everyMinute(1, 24)},
		broken: map[time.Time]bool{day.Add(5 * time.Hour): true}}
	cfg := config(25)
	cfg.Outbound = false
	got, res, err := collect(t, cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "vdn 25 inbound 2026-12-01T05:00:00Z..2026-12-01T06:00:00Z: page at offset 0: HTTP 503") {
		t.Fatalf("failures = %q", res.Failures)
	}
	if n := len(got[tallyKey{25, true}]); n != 23*60 {
		t.Fatalf("kept %d calls, want the 23 good hours' %d", n, 23*60)
	}

	// A slice that never adds up, down to the minimum: failed, not short.
	f = &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: everyMinute(10, 2)}, shortAbove: time.Nanosecond}
	cfg.To = day.Add(2 * time.Hour)
	_, res, err = collect(t, cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Failed() || !strings.Contains(res.Failures[0], "unique call IDs for a count of") {
		t.Fatalf("failures = %q", res.Failures)
	}
}

// A listed row that is no call's (no callId, an empty one, a row that is
// not an object, a callId that is not a key) is rejected, naming the slice,
// its offset and the row as listed; the slice still reconciles (the row
// counts under its place) and every other call of it is kept, without a
// bisection. The discovery reports it (a rejected row makes etl discover
// exit 3).
func TestDiscoverRejectsARowThatIsNoCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, row, reason, shown string
	}{
		{"no callId", `{"callType":"0", "vdn": 25}`, "no callId", `{"callType":"0","vdn":25}`},
		{"empty callId", `{"callId":" ","callType":"0"}`, "no callId", `{"callId":" ","callType":"0"}`},
		{"null callId", `{"callId":null}`, "no callId", `{"callId":null}`},
		{"not an object", `[1,2]`, "undecodable", `[1,2]`},
		{"callId not a key", `{"callId":"abc"}`, `callId "abc"`, `{"callId":"abc"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// 180 calls an hour: two pages a slice; the bad row is the
			// 150th of 05:00..06:00, on its second page.
			times := everyMinute(3, 24)
			f := &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: times}, bad: map[int]string{5*180 + 149: tt.row}}
			cfg := config(25)
			cfg.Outbound = false
			got, res, err := collect(t, cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			ta := res.Tallies[0]
			if n := len(got[tallyKey{25, true}]); n != len(times)-1 || ta.Kept != int64(n) || ta.Rejected != 1 || ta.Failed != 0 ||
				ta.Bisections != 0 || ta.Reported != int64(len(times)) {
				t.Fatalf("kept %d of %d calls, tally %+v: want all but the bad row, one rejected, nothing failed or bisected", n, len(times), ta)
			}
			want := "vdn 25 inbound 2026-12-01T05:00:00Z..2026-12-01T06:00:00Z: row at offset 149 rejected: " + tt.reason
			if len(res.Failures) != 1 || !strings.HasPrefix(res.Failures[0], want) || !strings.HasSuffix(res.Failures[0], "; listed as "+tt.shown) {
				t.Fatalf("failures = %q, want %q ... listed as %s", res.Failures, want, tt.shown)
			}
			// One page per 100 rows: the rejection costs no request.
			if f.requests != 24*2 {
				t.Errorf("%d requests, want the minimum %d", f.requests, 24*2)
			}
		})
	}
}

func TestDiscoverStopsOnFatal(t *testing.T) {
	t.Parallel()
	f := &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: everyMinute(1, 24)}, stopAt: day}
	_, _, err := collect(t, config(25), f)
	var se *StopError
	if !errors.Is(err, ErrStop) || !errors.As(err, &se) || se.HTTPStatus != 401 || !strings.Contains(err.Error(), "signature rejected") {
		t.Fatalf("err = %v, want a StopError of the 401", err)
	}
}

// A call both passes of a time slice list is kept once, as inbound, with
// BothDirections set, whatever order the concurrent passes answer in: the
// same calls, directions and flags in the same order on every run. The
// dropped outbound listings are counted as both_directions on the outbound
// tally; a call a pass lists in two slices (a boundary) is counted apart,
// as a same-pass duplicate. Each tally reconciles: reported = kept +
// rejected + both_directions + same-pass duplicates.
func TestDiscoverIsDeterministicAboutCallsListedTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		sameIDs               bool
		overlap               time.Duration
		wantIn, wantOut       int // calls kept per direction
		wantBoth, wantSame    int64
		wantFlagged           int
		wantSameIn, wantSame0 int64 // same-pass duplicates per tally
	}{
		{name: "both passes list every call", sameIDs: true, wantIn: 480, wantOut: 0, wantBoth: 480, wantFlagged: 480},
		{name: "distinct calls", wantIn: 480, wantOut: 480},
		// Windows reaching a minute into the next slice: each pass lists
		// that minute's calls twice (2 calls x 3 boundaries x 2 passes).
		{name: "overlapping slices", overlap: time.Minute, wantIn: 480, wantOut: 480, wantSame: 12, wantSameIn: 6, wantSame0: 6},
		{name: "both, overlapping", sameIDs: true, overlap: time.Minute, wantIn: 480, wantBoth: 480, wantFlagged: 480, wantSame: 12, wantSameIn: 6, wantSame0: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			times := everyMinute(2, 4)
			var first []Call
			for run := range 8 {
				f := &fakeCalls{calls: map[tallyKey][]time.Time{{25, true}: times, {25, false}: times}, sameIDs: tt.sameIDs,
					overlap: tt.overlap, jitter: true}
				cfg := config(25)
				cfg.To = day.Add(4 * time.Hour)
				got, calls, res, err := collectCalls(t, cfg, f)
				if err != nil {
					t.Fatal(err)
				}
				if res.Failed() {
					t.Fatalf("failures %v", res.Failures)
				}
				if len(got[tallyKey{25, true}]) != tt.wantIn || len(got[tallyKey{25, false}]) != tt.wantOut {
					t.Fatalf("kept %d inbound, %d outbound; want %d, %d", len(got[tallyKey{25, true}]), len(got[tallyKey{25, false}]), tt.wantIn, tt.wantOut)
				}
				flagged := 0
				for _, c := range calls {
					if c.BothDirections {
						flagged++
					}
				}
				var both, same int64
				for _, ta := range res.Tallies {
					both += ta.BothDirections
					same += ta.SamePass
					if ta.Reported != ta.Kept+ta.Rejected+ta.BothDirections+ta.SamePass {
						t.Errorf("tally %+v does not reconcile", ta)
					}
					if want := map[bool]int64{true: tt.wantSameIn, false: tt.wantSame0}[ta.Inbound]; ta.SamePass != want {
						t.Errorf("tally %+v: same-pass duplicates %d, want %d", ta, ta.SamePass, want)
					}
					if ta.Inbound && ta.BothDirections != 0 {
						t.Errorf("inbound tally %+v counts both-direction drops: inbound wins", ta)
					}
				}
				if flagged != tt.wantFlagged || both != tt.wantBoth || same != tt.wantSame {
					t.Fatalf("%d flagged, both_directions %d, same-pass %d; want %d, %d, %d", flagged, both, same, tt.wantFlagged, tt.wantBoth, tt.wantSame)
				}
				if run == 0 {
					first = calls
					continue
				}
				if len(calls) != len(first) {
					t.Fatalf("run %d emitted %d calls, run 0 %d", run, len(calls), len(first))
				}
				for i := range calls {
					if calls[i].Key != first[i].Key || calls[i].Inbound != first[i].Inbound || calls[i].BothDirections != first[i].BothDirections {
						t.Fatalf("run %d, call %d: %v inbound %v both %v; run 0: %v inbound %v both %v", run, i, calls[i].Key,
							calls[i].Inbound, calls[i].BothDirections, first[i].Key, first[i].Inbound, first[i].BothDirections)
					}
				}
			}
		})
	}
}

func TestValidateExplainsTheRetention(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"ok", func(*Config) {}, ""},
		{"two days ago", func(c *Config) { c.From = day.Add(-24 * time.Hour) }, "one day"},
		{"tomorrow", func(c *Config) { c.To = day.Add(72 * time.Hour) }, "one day"},
		{"no vdn", func(c *Config) { c.VDNs = nil }, "--vdn"},
		{"bad vdn", func(c *Config) { c.VDNs = []int{5001} }, "--vdn 5001"},
		{"bad cc", func(c *Config) { c.CCID = 0 }, "--cc-id"},
		{"empty window", func(c *Config) { c.To = c.From }, "--to"},
		{"no direction", func(c *Config) { c.Inbound, c.Outbound = false, false }, "--direction"},
		{"tiny slice", func(c *Config) { c.Slice = time.Second }, "--slice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config(25)
			tt.change(&c)
			err := c.Validate(now)
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAllowedWindow(t *testing.T) {
	t.Parallel()
	from, to := AllowedWindow(time.Date(2026, 12, 2, 23, 59, 0, 0, time.FixedZone("CST", 8*3600)))
	if !from.Equal(day) || !to.Equal(day.Add(48*time.Hour)) {
		t.Fatalf("window %v .. %v", from, to)
	}
}
