package cmssim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// fakeClock is the simulated time of a test; Sleep advances it at once.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
	return ctx.Err()
}

// The simulated day of the tests: 2025-11-07 UTC (callId 1762523104-... is
// in it), queried at 01:00 the next day.
var (
	day      = time.Date(2025, 11, 7, 0, 0, 0, 0, time.UTC)
	dayEnd   = day.Add(24*time.Hour - time.Millisecond)
	nextDay1 = day.Add(25 * time.Hour)
)

// testCalls is the schedule of the tests: two VDNs of call center 1 at 4
// calls a minute (about 170 inbound and 70 outbound per hour and VDN).
func testCalls(clock *fakeClock) CallsConfig {
	c := DefaultCalls()
	c.VDNs = []VDN{{1, 25}, {1, 26}}
	c.CallsPerMinute = 4
	c.Now = clock.Now
	return c
}

func mustSchedule(t testing.TB, seed int64, cfg CallsConfig) *Schedule {
	t.Helper()
	s, err := NewSchedule(seed, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScheduleDeterministic(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	a := mustSchedule(t, 7, testCalls(clock)).Calls(1, 25, day, day.Add(time.Hour), DirectionBoth)
	b := mustSchedule(t, 7, testCalls(clock)).Calls(1, 25, day, day.Add(time.Hour), DirectionBoth)
	other := mustSchedule(t, 8, testCalls(clock)).Calls(1, 25, day, day.Add(time.Hour), DirectionBoth)
	if len(a) < 150 || !slices.EqualFunc(a, b, callsEqual) {
		t.Fatalf("same seed: %d and %d calls, equal %v", len(a), len(b), slices.EqualFunc(a, b, callsEqual))
	}
	if slices.EqualFunc(a, other, callsEqual) {
		t.Error("a different seed gave the same calls")
	}
	// A window is the same whether listed whole or in pieces.
	s := mustSchedule(t, 7, testCalls(clock))
	var pieces []Call
	for from := day; from.Before(day.Add(time.Hour)); from = from.Add(7 * time.Minute) {
		to := from.Add(7*time.Minute - time.Millisecond)
		if end := day.Add(time.Hour); to.After(end) {
			to = end
		}
		pieces = append(pieces, s.Calls(1, 25, from, to, DirectionBoth)...)
	}
	if !slices.EqualFunc(a, pieces, callsEqual) {
		t.Errorf("pieces: %d calls, whole: %d", len(pieces), len(a))
	}
}

func callsEqual(a, b Call) bool { return a == b }

// TestScheduleShares checks the rate and the shares over a simulated day.
func TestScheduleShares(t *testing.T) {
	t.Parallel()
	cfg := testCalls(newFakeClock(nextDay1))
	cfg.CallsPerMinute = 10
	s := mustSchedule(t, 1, cfg)
	calls := s.Calls(1, 26, day, dayEnd, DirectionBoth)
	n := float64(len(calls))
	if want := 10.0 * 60 * 24; n < want*0.97 || n > want*1.03 {
		t.Errorf("%v calls in a day, want about %v", n, want)
	}
	var in, abandoned, chat, outTimes float64
	for _, c := range calls {
		if c.Inbound {
			in++
			if c.MediaType == 53 {
				chat++
			}
		} else if c.HasOutboundTimes() {
			outTimes++
		}
		if !c.Answered() {
			abandoned++
		}
	}
	check := func(name string, got, want float64) {
		if got < want-0.02 || got > want+0.02 {
			t.Errorf("%s share %.3f, want about %.2f", name, got, want)
		}
	}
	check("inbound", in/n, cfg.InboundShare)
	check("abandoned", abandoned/n, cfg.AbandonShare)
	check("chat of inbound", chat/in, pChat)
	check("41/43 of outbound", outTimes/(n-in), 0.35)
}

// Known codes from the reference tables, copied independently of the
// generator's tables.
var (
	inboundTypes   = []int{0, 1, 5}
	outboundTypes  = []int{7, 8, 41, 43, 44}
	table1Releases = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 47, 48, 49, 50, 59, 60, 61, 62, 63, 80,
		251, 252, 253, 254, 256, 257, 258, 263, 338, 339, 340, 342, 343, 344, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 356, 357, 359}
	leaveByOutcome = map[string][]int{
		CallAnswered:       {88, 16, 17},
		CallAbandonedIVR:   {15},
		CallAbandonedQueue: {89},
		CallNotConnected:   {20, 22, 24, 26, 27},
	}
)

// TestCallsConsistent checks every call of a simulated day for the rules the
// job relies on.
func TestCallsConsistent(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	cfg := testCalls(clock)
	s := mustSchedule(t, 3, cfg)
	ids := map[string]bool{}
	outcomes := map[string]int{}
	releases := map[int]int{}
	for _, v := range cfg.VDNs {
		for _, c := range s.Calls(v.CCID, v.VDN, day, dayEnd, DirectionBoth) {
			checkCall(t, s, c)
			if ids[c.CallID] {
				t.Fatalf("callId %s twice in call center 1", c.CallID)
			}
			ids[c.CallID] = true
			outcomes[c.Outcome]++
			releases[c.ReleaseCause]++
		}
	}
	for o := range leaveByOutcome {
		if outcomes[o] == 0 {
			t.Errorf("outcome %s never occurred: %v", o, outcomes)
		}
	}
	if releases[1101] == 0 {
		t.Errorf("the unpublished release cause never occurred: %v", releases)
	}
}

func checkCall(t *testing.T, s *Schedule, c Call) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("call %s: "+format+"\n%+v", append([]any{c.CallID}, append(args, c)...)...)
	}
	if err := extract.ValidateCallID(c.CallID); err != nil || len(c.CallID) > 20 {
		fail("bad callId: %v", err)
	}
	prefix, suffix, _ := strings.Cut(c.CallID, "-")
	if prefix != strconv.FormatInt(c.WaitBegin.Unix(), 10) || len(prefix) != 10 {
		fail("prefix is not the start second %d", c.WaitBegin.Unix())
	}
	if n, _ := strconv.Atoi(suffix); n/1000 != c.VDN {
		fail("suffix %s does not carry vdn %d", suffix, c.VDN)
	}
	if got, ok := s.Lookup(c.CCID, c.CallID); !ok || got != c {
		fail("Lookup gave %+v, %v", got, ok)
	}
	total := int(c.CallEnd.Sub(c.WaitBegin) / time.Second)
	if c.CallEnd.Sub(c.WaitBegin)%time.Second != 0 || c.IVRSeconds+c.QueueSeconds+c.RingSeconds+c.TalkSeconds != total {
		fail("phases %d+%d+%d+%d != duration %v", c.IVRSeconds, c.QueueSeconds, c.RingSeconds, c.TalkSeconds, c.CallEnd.Sub(c.WaitBegin))
	}
	if total < 20 || total > 120 {
		fail("duration %ds outside 20..120", total)
	}
	if d := c.LogDate.Sub(c.CallEnd); d < 0 || d > s.cfg.SettleDelay {
		fail("logDate %v after the end", d)
	}
	if c.Answered() {
		want := c.WaitBegin.Add(time.Duration(c.IVRSeconds+c.QueueSeconds+c.RingSeconds) * time.Second)
		if !c.AckBegin.Equal(want) || !c.CallBegin.Equal(c.AckBegin) || c.TalkSeconds < 1 || c.RingSeconds < 1 {
			fail("answered call: ackBegin %v want %v", c.AckBegin, want)
		}
	} else if !c.AckBegin.IsZero() || !c.CallBegin.IsZero() || c.TalkSeconds != 0 {
		fail("unanswered call with an answer")
	}
	if !slices.Contains(leaveByOutcome[c.Outcome], c.LeaveReason) || !slices.Contains(knownCodes["enterReason"], int64(c.LeaveReason)) {
		fail("leaveReason %d for outcome %s", c.LeaveReason, c.Outcome)
	}
	if !slices.Contains(table1Releases, c.ReleaseCause) && c.ReleaseCause != 1101 {
		fail("releaseCause %d", c.ReleaseCause)
	}
	if c.MediaType != 5 && (c.MediaType != 53 || !c.Inbound) || (c.MediaType == 53) != (c.SubMediaType >= 1 && c.SubMediaType <= 10) {
		fail("mediaType %d/%d", c.MediaType, c.SubMediaType)
	}
	for _, no := range []string{c.CallerNo, c.CalleeNo} {
		if no == "" || strings.Trim(no, "0123456789") != "" {
			fail("number %q is not digits", no)
		}
	}
	if c.Inbound {
		if !slices.Contains(inboundTypes, c.CallType) || c.Result != "" || c.ResultCode != "" || c.BusiResult != "" ||
			c.Outcome == CallNotConnected || c.CalleeNo != accessNumber(c.VDN) {
			fail("inbound call with outbound traits")
		}
		if (c.AgentID != 0) != c.Answered() || (c.SkillID != 0) != (c.Outcome != CallAbandonedIVR) {
			fail("agent %d skill %d for outcome %s", c.AgentID, c.SkillID, c.Outcome)
		}
	} else {
		if !slices.Contains(outboundTypes, c.CallType) || c.IVRSeconds != 0 || c.QueueSeconds != 0 || c.AnonyCall != 0 ||
			c.Outcome == CallAbandonedIVR || c.Outcome == CallAbandonedQueue || c.CallerNo != accessNumber(c.VDN) {
			fail("outbound call with inbound traits")
		}
		if c.AgentID == 0 || c.SkillID == 0 || c.Result == "" || c.ResultCode == "" ||
			(c.BusiResult != "") != c.Answered() || (c.Result == "0101") == c.Answered() {
			fail("outbound result fields")
		}
	}
}

func TestScheduleStoredAndRetained(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	rolling := testCalls(clock)
	rolling.Retention = 6 * time.Hour
	calendar, roll := mustSchedule(t, 2, testCalls(clock)), mustSchedule(t, 2, rolling)
	c := calendar.Calls(1, 25, day.Add(12*time.Hour), dayEnd, DirectionBoth)[0]
	tests := []struct {
		name   string
		s      *Schedule
		now    time.Time
		stored bool
	}{
		{"before the end", calendar, c.CallEnd.Add(-time.Millisecond), false},
		{"ended, not yet stored", calendar, c.LogDate.Add(-time.Millisecond), false},
		{"at logDate", calendar, c.LogDate, true},
		{"next day", calendar, day.Add(47 * time.Hour), true},
		{"last instant of the next day", calendar, day.Add(48*time.Hour - time.Nanosecond), true},
		{"two days later", calendar, day.Add(48 * time.Hour), false},
		{"rolling, within", roll, c.WaitBegin.Add(6*time.Hour - time.Millisecond), true},
		{"rolling, expired", roll, c.WaitBegin.Add(6 * time.Hour), false},
	}
	for _, tc := range tests {
		if got := tc.s.Stored(c, tc.now); got != tc.stored {
			t.Errorf("%s: Stored %v, want %v", tc.name, got, tc.stored)
		}
	}
	// Listed is Calls filtered by Stored.
	now := day.Add(13 * time.Hour)
	all := calendar.Calls(1, 25, day.Add(12*time.Hour), now, DirectionIn)
	listed := calendar.Listed(1, 25, day.Add(12*time.Hour), now, DirectionIn, now)
	var want []Call
	for _, c := range all {
		if calendar.Stored(c, now) {
			want = append(want, c)
		}
	}
	if !slices.EqualFunc(listed, want, callsEqual) || len(listed) == len(all) || len(listed) == 0 {
		t.Errorf("Listed %d, Calls %d, stored %d", len(listed), len(all), len(want))
	}
}

func TestScheduleLookupMisses(t *testing.T) {
	t.Parallel()
	s := mustSchedule(t, 2, testCalls(newFakeClock(nextDay1)))
	c := s.Calls(1, 25, day, day.Add(time.Hour), DirectionBoth)[0]
	prefix, suffix, _ := strings.Cut(c.CallID, "-")
	n, _ := strconv.Atoi(suffix)
	for _, tc := range []struct {
		name, id string
		cc       int
	}{
		{"other call center", c.CallID, 2},
		{"unscheduled vdn", prefix + "-" + strconv.Itoa(27000+n%1000), 1},
		{"leading zero", prefix + "-0" + suffix, 1},
		{"next second", strconv.FormatInt(c.WaitBegin.Unix()+3600*24*400, 10) + "-" + suffix, 1},
		{"not an id", "abc", 1},
		{"milliseconds prefix", strconv.FormatInt(c.WaitBegin.UnixMilli(), 10) + "-" + suffix, 1},
	} {
		if got, ok := s.Lookup(tc.cc, tc.id); ok {
			t.Errorf("%s: %s found %+v", tc.name, tc.id, got)
		}
	}
}

func TestCallsConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*CallsConfig)
		field string // "" = valid
	}{
		{"defaults", func(*CallsConfig) {}, ""},
		{"zero durations take defaults", func(c *CallsConfig) { c.MinDuration, c.MaxDuration = 0, 0 }, ""},
		{"no vdns", func(c *CallsConfig) { c.VDNs = nil }, "Calls.VDNs"},
		{"vdn out of range", func(c *CallsConfig) { c.VDNs = []VDN{{1, 5001}} }, "Calls.VDNs"},
		{"vdn twice", func(c *CallsConfig) { c.VDNs = []VDN{{1, 2}, {1, 2}} }, "Calls.VDNs"},
		{"no rate", func(c *CallsConfig) { c.CallsPerMinute = 0 }, "Calls.CallsPerMinute"},
		{"rate too high", func(c *CallsConfig) { c.CallsPerMinute = 6001 }, "Calls.CallsPerMinute"},
		{"inbound share", func(c *CallsConfig) { c.InboundShare = 1.1 }, "Calls.InboundShare"},
		{"abandon share", func(c *CallsConfig) { c.AbandonShare = -0.1 }, "Calls.AbandonShare"},
		{"short page share", func(c *CallsConfig) { c.ShortPageShare = 2 }, "Calls.ShortPageShare"},
		{"drift share", func(c *CallsConfig) { c.CountDriftShare = 2 }, "Calls.CountDriftShare"},
		{"too short", func(c *CallsConfig) { c.MinDuration = time.Second }, "Calls.MinDuration"},
		{"max below min", func(c *CallsConfig) { c.MinDuration, c.MaxDuration = time.Minute, 30*time.Second }, "Calls.MaxDuration"},
		{"negative settle", func(c *CallsConfig) { c.SettleDelay = -1 }, "Calls.SettleDelay"},
		{"negative retention", func(c *CallsConfig) { c.Retention = -1 }, "Calls.Retention"},
		{"body shape", func(c *CallsConfig) { c.CDRBodyShape = "nested" }, "Calls.CDRBodyShape"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultCalls()
			tc.edit(&c)
			err := ValidateCalls(c)
			cfgErr := Config{Credentials: testCreds, Calls: &c}.Validate()
			switch {
			case tc.field == "" && (err != nil || cfgErr != nil):
				t.Errorf("unexpected error: %v / %v", err, cfgErr)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":") ||
				cfgErr == nil || !strings.Contains(cfgErr.Error(), tc.field+":")):
				t.Errorf("error %v / %v, want one naming %s", err, cfgErr, tc.field)
			}
		})
	}
}

// TestScheduleGolden pins the schedule: the lead's integration tests and
// demos rely on it being stable. Run with -update after a deliberate change.
func TestScheduleGolden(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	cfg := testCalls(clock)
	cfg.TenantZone = time.FixedZone("UTC-3", -3*3600)
	s := mustSchedule(t, 42, cfg)
	var b bytes.Buffer
	// The first calls of the hour, then the first of each other kind.
	seen := map[string]bool{}
	for i, c := range s.Calls(1, 25, time.Unix(1762520400, 0), time.Unix(1762524000, 0), DirectionBoth) {
		kind := fmt.Sprint(c.Inbound, c.Outcome, c.HasOutboundTimes(), c.MediaType)
		if i >= 3 && seen[kind] {
			continue
		}
		seen[kind] = true
		j, err := json.Marshal(c)
		must(t, err)
		fmt.Fprintf(&b, "%s\n  row %s\n  cdr %s\n", j, c.QueryCallsRow(), s.CDRObject(c))
	}
	golden(t, "schedule.golden", b.Bytes())
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		must(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update if intended):\n%s", path, got)
	}
}

func BenchmarkScheduleDay(b *testing.B) {
	s := mustSchedule(b, 1, testCalls(newFakeClock(nextDay1)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		s.eachHead(1, 25, day, dayEnd, func(hd *head) bool { s.call(hd); n++; return true })
	}
}

// BenchmarkQueryCallsPageBusy is the server's cost of one querycalls page
// (100 rows) over a one-hour window of a busy VDN (20 calls/s, about 50,000
// inbound calls): each page recounts the window.
func BenchmarkQueryCallsPageBusy(b *testing.B) {
	cfg := testCalls(newFakeClock(nextDay1))
	cfg.CallsPerMinute = 1200
	s := mustSchedule(b, 1, cfg)
	q := queryCallsRequest{ccID: 1, vdn: 25, begin: day.UnixMilli(), end: day.Add(time.Hour).UnixMilli(), inbound: true, limit: 100, offset: 20000}
	b.ReportAllocs()
	for b.Loop() {
		if page, count := s.listPage(q, nextDay1); len(page) != 100 || count < 40000 {
			b.Fatalf("page %d count %d", len(page), count)
		}
	}
}
