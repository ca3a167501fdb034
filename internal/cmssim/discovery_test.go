package cmssim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// page is a decoded querycalls answer.
type page struct {
	Code string
	Desc string // failure text
	Rows []map[string]any
	IDs  []string
	N    int // count
}

func (c *client) queryCalls(t *testing.T, body map[string]any) page {
	t.Helper()
	b, err := json.Marshal(body)
	must(t, err)
	r, err := c.post(t.Context(), PathQueryCalls, b)
	must(t, err)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var top struct {
		ResultCode string          `json:"resultCode"`
		ResultDesc json.RawMessage `json:"resultDesc"`
	}
	if err := json.Unmarshal(r.body, &top); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	p := page{Code: top.ResultCode}
	if len(top.ResultDesc) > 0 && top.ResultDesc[0] == '"' {
		must(t, json.Unmarshal(top.ResultDesc, &p.Desc))
		return p
	}
	var desc struct {
		Data  []map[string]any `json:"data"`
		Count *int             `json:"count"`
	}
	must(t, json.Unmarshal(top.ResultDesc, &desc))
	if desc.Data == nil || desc.Count == nil {
		t.Fatalf("no data array or count: %s", r.body)
	}
	p.Rows, p.N = desc.Data, *desc.Count
	for _, row := range p.Rows {
		id, _ := row["callId"].(string) // "" for an unkeyed row (CallsConfig.UnkeyedRowShare)
		p.IDs = append(p.IDs, id)
	}
	return p
}

func window(vdn int, from, to time.Time, in bool) map[string]any {
	return map[string]any{"ccId": 1, "vdn": vdn, "beginDate": from.UnixMilli(), "endDate": to.UnixMilli(),
		"isCallIn": strconv.FormatBool(in)}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func ids(calls []Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.CallID
	}
	return out
}

func TestQueryCallsRejects(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	s, c := liveServer(t, clock, nil)
	ok := window(25, day, dayEnd, true)
	tests := []struct {
		name string
		body map[string]any
		desc string // substring of the 0100002 text
	}{
		{"no isCallIn", with(ok, "isCallIn", nil), "Invalid param, must have parameter: 'isCallIn'"},
		{"isCallin spelling", with(ok, "isCallIn", nil, "isCallin", "true"), "must have parameter: 'isCallIn'"},
		{"isCallIn boolean", with(ok, "isCallIn", true), "isCallIn"},
		{"isCallIn yes", with(ok, "isCallIn", "yes"), "isCallIn"},
		{"no beginDate", with(ok, "beginDate", nil), "must have parameter: 'beginDate'"},
		{"no endDate", with(ok, "endDate", nil), "must have parameter: 'endDate'"},
		{"no ccId", with(ok, "ccId", nil), "must have parameter: 'ccId'"},
		{"no vdn", with(ok, "vdn", nil), "must have parameter: 'vdn'"},
		{"ccId as string", with(ok, "ccId", "1"), "ccId"},
		{"vdn too big", with(ok, "vdn", 5001), "vdn"},
		{"limit above 100", with(ok, "limit", 101), "limit"},
		{"limit zero", with(ok, "limit", 0), "limit"},
		{"offset negative", with(ok, "offset", -1), "offset"},
		{"beginDate fraction", with(ok, "beginDate", 1.5), "beginDate"},
		{"beginDate not a number", with(ok, "beginDate", "yesterday"), "beginDate"},
		{"begin before yesterday", with(ok, "beginDate", day.UnixMilli()-1), "previous day"},
		{"end after today", with(ok, "endDate", day.Add(48*time.Hour).UnixMilli()), "current day"},
		{"begin after end", with(ok, "beginDate", dayEnd.UnixMilli(), "endDate", day.UnixMilli()), "later than endDate"},
		{"callerNo letters", with(ok, "callerNo", "abc"), "callerNo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := c.queryCalls(t, tc.body)
			if p.Code != "0100002" || !strings.Contains(p.Desc, tc.desc) {
				t.Errorf("code %q desc %q, want 0100002 with %q", p.Code, p.Desc, tc.desc)
			}
		})
	}
	r, err := c.post(t.Context(), PathQueryCalls, []byte(`[1]`))
	must(t, err)
	if code, _ := codeOf(t, r.body); code != "0100002" {
		t.Errorf("array body: %s", r.body)
	}
	st := s.Stats()
	if n := int64(len(tests) + 1); st.QueryCalls.Rejected != n || st.ByEndpoint[EndpointQueryCalls] != n || st.ByOutcome[OutcomeBadRequest] != n {
		t.Errorf("stats %+v by endpoint %v", st.QueryCalls, st.ByEndpoint)
	}
}

// TestQueryCallsDay pages through a simulated day for two VDNs and both
// directions, as a discovery job would, and compares with the schedule.
func TestQueryCallsDay(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	s, c := liveServer(t, clock, nil)
	sched := s.Schedule()
	requests := 0
	for _, vdn := range []int{25, 26} {
		for _, in := range []bool{true, false} {
			dir := map[bool]Direction{true: DirectionIn, false: DirectionOut}[in]
			want := sched.Listed(1, vdn, day, dayEnd, dir, clock.Now())
			if len(want) < 1000 {
				t.Fatalf("only %d calls listed", len(want))
			}
			var got []string
			for offset := 0; ; offset += 100 {
				p := c.queryCalls(t, with(window(vdn, day, dayEnd, in), "limit", 100, "offset", offset))
				requests++
				if p.Code != "0100000" || p.N != len(want) {
					t.Fatalf("offset %d: code %s count %d, want %d", offset, p.Code, p.N, len(want))
				}
				for i, row := range p.Rows {
					checkRow(t, row, want[offset+i])
				}
				got = append(got, p.IDs...)
				if len(p.Rows) < 100 {
					break
				}
			}
			if !slices.Equal(got, ids(want)) {
				t.Errorf("vdn %d in %v: %d ids paged, %d listed", vdn, in, len(got), len(want))
			}
		}
	}
	st := s.Stats()
	if st.QueryCalls.Pages != int64(requests) || st.ByEndpoint[EndpointQueryCalls] != int64(requests) {
		t.Errorf("stats %+v by endpoint %v, want %d pages", st.QueryCalls, st.ByEndpoint, requests)
	}
}

// checkRow compares a decoded row with the call, field by field, in the
// types of Huawei's sample.
func checkRow(t *testing.T, row map[string]any, c Call) {
	t.Helper()
	ms := func(tm time.Time) any {
		if tm.IsZero() {
			return nil
		}
		return strconv.FormatInt(tm.UnixMilli(), 10)
	}
	var sub any
	if c.SubMediaType != 0 {
		sub = float64(c.SubMediaType)
	}
	want := map[string]any{
		"logDate": ms(c.LogDate), "callerNo": c.CallerNo, "calleeNo": c.CalleeNo, "callId": c.CallID,
		"callType": strconv.Itoa(c.CallType), "waitBegin": ms(c.WaitBegin), "ackBegin": ms(c.AckBegin),
		"callBegin": ms(c.CallBegin), "callEnd": ms(c.CallEnd), "vdn": float64(c.VDN),
		"leaveReason": strconv.Itoa(c.LeaveReason), "mediaType": float64(c.MediaType), "subMediaType": sub,
	}
	if len(row) != len(want) {
		t.Fatalf("row has %d fields, want %d: %v", len(row), len(want), row)
	}
	for k, v := range want {
		if got, ok := row[k]; !ok || got != v {
			t.Fatalf("row %s: %s = %#v, want %#v", c.CallID, k, got, v)
		}
	}
}

func TestQueryCallsFilter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(day.Add(13 * time.Hour))
	s, c := liveServer(t, clock, nil)
	sched := s.Schedule()
	now := clock.Now()
	one := sched.Calls(1, 25, day.Add(12*time.Hour), day.Add(12*time.Hour+10*time.Minute), DirectionIn)[3]
	recent := sched.Calls(1, 25, now.Add(-2*time.Minute), now, DirectionBoth)
	listed := func(from, to time.Time) []Call { return sched.Listed(1, 25, from, to, DirectionIn, now) }
	after, before := one.WaitBegin.Add(time.Millisecond), one.WaitBegin.Add(-time.Millisecond)
	tests := []struct {
		name string
		body map[string]any
		want []Call
	}{
		{"bounds inclusive", window(25, one.WaitBegin, one.WaitBegin, true), []Call{one}},
		{"begin bound", window(25, one.WaitBegin, one.WaitBegin.Add(time.Minute), true), listed(one.WaitBegin, one.WaitBegin.Add(time.Minute))},
		{"begin bound + 1 ms", window(25, after, after.Add(time.Minute), true), listed(after, after.Add(time.Minute))},
		{"end bound", window(25, one.WaitBegin.Add(-time.Minute), one.WaitBegin, true), listed(one.WaitBegin.Add(-time.Minute), one.WaitBegin)},
		{"end bound - 1 ms", window(25, before.Add(-time.Minute), before, true), listed(before.Add(-time.Minute), before)},
		{"other direction", window(25, one.WaitBegin, one.WaitBegin, false), nil},
		{"caller filter", with(window(25, day, now, true), "callerNo", one.CallerNo), []Call{one}},
		{"callee filter", with(window(25, day.Add(12*time.Hour), one.WaitBegin, true), "calleeNo", one.CalleeNo),
			sched.Listed(1, 25, day.Add(12*time.Hour), one.WaitBegin, DirectionIn, now)},
		{"recent calls not yet stored", window(25, now.Add(-2*time.Minute), now, true),
			sched.Listed(1, 25, now.Add(-2*time.Minute), now, DirectionIn, now)},
		{"unscheduled vdn", window(27, day, now, true), nil},
		{"future window", window(25, now, dayEnd, true), nil},
		{"strings for numbers", map[string]any{"ccId": 1, "vdn": 25, "beginDate": strconv.FormatInt(one.WaitBegin.UnixMilli(), 10),
			"endDate": strconv.FormatInt(one.WaitBegin.UnixMilli(), 10), "isCallIn": "true", "limit": "10", "offset": "0"}, []Call{one}},
	}
	if len(recent) == len(sched.Listed(1, 25, now.Add(-2*time.Minute), now, DirectionBoth, now)) {
		t.Fatal("every recent call is already stored: the test window proves nothing")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := c.queryCalls(t, tc.body)
			if p.Code != "0100000" || p.N != len(tc.want) || len(p.IDs) != len(tc.want) || !slices.Equal(p.IDs, ids(tc.want)) && len(tc.want) > 0 {
				t.Errorf("code %s count %d ids %v, want %v", p.Code, p.N, p.IDs, ids(tc.want))
			}
			has := slices.Contains(p.IDs, one.CallID)
			if strings.HasSuffix(tc.name, "ms") && has || strings.HasSuffix(tc.name, "bound") && !has {
				t.Errorf("call %s in the answer: %v", one.CallID, has)
			}
		})
	}
	// The window rule follows the clock: the day before yesterday is gone.
	clock.Set(day.Add(48 * time.Hour))
	if p := c.queryCalls(t, window(25, day, dayEnd, true)); p.Code != "0100002" {
		t.Errorf("two days later: %+v", p)
	}
}

// TestQueryCallsFaults: short pages and drifting counts hit multi-page
// windows only, and a client that bisects to one-page windows gets every
// call.
func TestQueryCallsFaults(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	s, c := liveServer(t, clock, func(cfg *Config) { cfg.Calls.ShortPageShare, cfg.Calls.CountDriftShare = 1, 0.5 })
	sched := s.Schedule()
	short, drifted, pages := 0, 0, 0
	for h := 6; h < 14; h++ {
		from, to := day.Add(time.Duration(h)*time.Hour), day.Add(time.Duration(h+1)*time.Hour-time.Millisecond)
		want := sched.Listed(1, 25, from, to, DirectionIn, clock.Now())
		if len(want) <= 100 {
			t.Fatalf("%d calls: need more than a page", len(want))
		}
		for offset := 0; offset < len(want); offset += 100 {
			p := c.queryCalls(t, with(window(25, from, to, true), "limit", 100, "offset", offset))
			pages++
			if len(p.Rows) < min(100, len(want)-offset) {
				short++
			}
			if p.N != len(want) {
				drifted++
				if p.N < len(want) || p.N > len(want)+3 {
					t.Errorf("count %d, true %d", p.N, len(want))
				}
			}
			again := c.queryCalls(t, with(window(25, from, to, true), "limit", 100, "offset", offset))
			if !slices.Equal(again.IDs, p.IDs) || again.N != p.N {
				t.Errorf("offset %d: a repeated request got another answer", offset)
			}
		}
	}
	if short != pages || drifted == 0 || drifted == pages {
		t.Errorf("of %d pages, %d short (want all), %d with a drifted count (want about half)", pages, short, drifted)
	}

	from, to := day.Add(8*time.Hour), day.Add(9*time.Hour-time.Millisecond)
	want := sched.Listed(1, 25, from, to, DirectionIn, clock.Now())

	// Bisect until a window fits one page, as the discovery job does.
	var got []string
	var bisect func(from, to time.Time)
	bisect = func(from, to time.Time) {
		p := c.queryCalls(t, with(window(25, from, to, true), "limit", 100))
		if p.N <= 100 && len(p.IDs) == p.N {
			got = append(got, p.IDs...)
			return
		}
		mid := from.Add(to.Sub(from) / 2).Truncate(time.Millisecond)
		bisect(from, mid)
		bisect(mid.Add(time.Millisecond), to)
	}
	bisect(from, to)
	if !slices.Equal(got, ids(want)) {
		t.Errorf("bisection found %d calls, want %d", len(got), len(want))
	}
	st := s.Stats().QueryCalls
	if st.ShortPages == 0 || st.CountDrifts == 0 {
		t.Errorf("stats %+v", st)
	}
}

// UnkeyedRowShare lists a share of the calls without their callId (empty,
// or no member at all); the schedule, the count and every other row stay
// as they are.
func TestQueryCallsUnkeyedRows(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	plain, _ := liveServer(t, clock, nil)
	s, c := liveServer(t, clock, func(cfg *Config) { cfg.Calls.UnkeyedRowShare = 0.1 })
	from, to := day.Add(8*time.Hour), day.Add(9*time.Hour-time.Millisecond)
	want := plain.Schedule().Listed(1, 25, from, to, DirectionIn, clock.Now())
	var got []string
	var n, empty, absent int
	for offset := 0; offset < len(want); offset += 100 {
		p := c.queryCalls(t, with(window(25, from, to, true), "limit", 100, "offset", offset))
		n = p.N
		for i, row := range p.Rows {
			got = append(got, p.IDs[i])
			switch id, ok := row["callId"]; {
			case !ok:
				absent++
			case id == "":
				empty++
			}
		}
	}
	if n != len(want) || len(got) != len(want) {
		t.Fatalf("count %d, %d rows; the schedule lists %d", n, len(got), len(want))
	}
	for i, c := range s.Schedule().Listed(1, 25, from, to, DirectionIn, clock.Now()) {
		switch {
		case c.CallID != want[i].CallID || c.WaitBegin != want[i].WaitBegin:
			t.Fatalf("row %d: the share changed the schedule: %v, want %v", i, c.CallID, want[i].CallID)
		case c.Unkeyed != (got[i] == ""):
			t.Errorf("row %d: unkeyed %v, listed callId %q", i, c.Unkeyed, got[i])
		case !c.Unkeyed && got[i] != c.CallID:
			t.Errorf("row %d: callId %q, want %q", i, got[i], c.CallID)
		}
	}
	if share := float64(empty+absent) / float64(len(want)); empty == 0 || absent == 0 || share < 0.05 || share > 0.15 {
		t.Errorf("%d empty and %d absent callIds of %d rows, want about 10%% of both kinds", empty, absent, len(want))
	}
}

// BothPassesShare lists a share of the calls in both passes, the same row
// in each, and their CDR answers in either direction; other calls are
// listed and answered in their own direction only.
func TestQueryCallsBothPasses(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	s, c := liveServer(t, clock, func(cfg *Config) { cfg.Calls.BothPassesShare = 0.2 })
	from, to := day.Add(8*time.Hour), day.Add(9*time.Hour-time.Millisecond)
	listing := map[bool]map[string]map[string]any{}
	for _, in := range []bool{true, false} {
		listing[in] = map[string]map[string]any{}
		for offset := 0; ; offset += 100 {
			p := c.queryCalls(t, with(window(25, from, to, in), "limit", 100, "offset", offset))
			for i, row := range p.Rows {
				listing[in][p.IDs[i]] = row
			}
			if offset+100 >= p.N {
				break
			}
		}
	}
	both := 0
	for _, call := range s.Schedule().Calls(1, 25, from, to, DirectionBoth) {
		inRow, inOK := listing[true][call.CallID]
		outRow, outOK := listing[false][call.CallID]
		switch {
		case call.BothPasses:
			both++
			if !inOK || !outOK || fmt.Sprint(inRow) != fmt.Sprint(outRow) {
				t.Errorf("%s (both passes): listed inbound %v, outbound %v", call.CallID, inOK, outOK)
			}
		case inOK != call.Inbound || outOK == call.Inbound:
			t.Errorf("%s (inbound %v): listed inbound %v, outbound %v", call.CallID, call.Inbound, inOK, outOK)
		}
		for _, in := range []bool{true, false} {
			_, _, top := c.callDetail(t, flatBody(call, in))
			if found := string(top["resultDesc"]) != "{}"; found != (call.BothPasses || in == call.Inbound) {
				t.Errorf("%s (inbound %v, both %v): CDR asked inbound %v found %v", call.CallID, call.Inbound, call.BothPasses, in, found)
			}
		}
	}
	if n := len(s.Schedule().Calls(1, 25, from, to, DirectionBoth)); both < n/10 || both > n*3/10 {
		t.Errorf("%d of %d calls listed by both passes, want about 20%%", both, n)
	}
}

// QueuedChatShare lists a share of the social chats with a waitBegin
// QueuedChatWait before the start the listing filters on; every other row,
// the filter and the count are unchanged.
func TestQueryCallsQueuedChats(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	plain, _ := liveServer(t, clock, nil)
	s, c := liveServer(t, clock, func(cfg *Config) { cfg.Calls.QueuedChatShare = 1 })
	from, to := day.Add(8*time.Hour), day.Add(12*time.Hour-time.Millisecond)
	want := plain.Schedule().Listed(1, 25, from, to, DirectionIn, clock.Now())
	var rows []map[string]any
	for offset := 0; offset < len(want); offset += 100 {
		p := c.queryCalls(t, with(window(25, from, to, true), "limit", 100, "offset", offset))
		if p.N != len(want) {
			t.Fatalf("count %d, want %d", p.N, len(want))
		}
		rows = append(rows, p.Rows...)
	}
	queued := 0
	for i, call := range s.Schedule().Listed(1, 25, from, to, DirectionIn, clock.Now()) {
		wait := call.WaitBegin
		if call.MediaType == 53 {
			queued++
			wait = wait.Add(-4 * 24 * time.Hour)
		}
		if call.CallID != want[i].CallID || rows[i]["callId"] != call.CallID || call.ListedWaitBegin() != wait ||
			rows[i]["waitBegin"] != strconv.FormatInt(wait.UnixMilli(), 10) {
			t.Errorf("row %d: %v; want %s waiting from %v", i, rows[i], call.CallID, wait)
		}
	}
	if queued == 0 {
		t.Error("no social chat in the window")
	}
}

func TestQueryCallsGolden(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	_, c := liveServer(t, clock, nil)
	var out []byte
	for _, body := range []map[string]any{
		with(window(25, day.Add(10*time.Hour), day.Add(11*time.Hour), true), "limit", 3, "offset", 0),
		with(window(25, day.Add(10*time.Hour), day.Add(11*time.Hour), false), "limit", 3, "offset", 6),
		window(26, day.Add(10*time.Hour), day.Add(10*time.Hour+10*time.Second), true),
		with(window(25, day, dayEnd, true), "isCallIn", nil),
	} {
		b, err := json.Marshal(body)
		must(t, err)
		r, err := c.post(t.Context(), PathQueryCalls, b)
		must(t, err)
		out = fmt.Appendf(out, "%s\n%s\n", b, r.body)
	}
	golden(t, "querycalls.golden", out)
}

// TestQueryCallsTransientFaults: Config.TransientShare hits querycalls
// pages, each failing TransientAttempts times before it succeeds.
func TestQueryCallsTransientFaults(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{FaultGenericFailure, FaultServerError, FaultTruncated} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock(nextDay1)
			s, c := liveServer(t, clock, func(cfg *Config) {
				cfg.TransientShare, cfg.TransientKinds, cfg.TransientAttempts = 1, []string{kind}, 2
			})
			body, err := json.Marshal(with(window(25, day.Add(time.Hour), day.Add(2*time.Hour), true), "limit", 100))
			must(t, err)
			for attempt := 1; attempt <= 2; attempt++ {
				r, err := c.post(t.Context(), PathQueryCalls, body)
				checkFault(t, kind, r, err)
			}
			p := c.queryCalls(t, with(window(25, day.Add(time.Hour), day.Add(2*time.Hour), true), "limit", 100))
			want := s.Schedule().Listed(1, 25, day.Add(time.Hour), day.Add(2*time.Hour), DirectionIn, clock.Now())
			if p.Code != "0100000" || p.N != len(want) {
				t.Errorf("after the faults: %+v", p)
			}
			if st := s.Stats(); st.ByOutcome[faultOutcome[kind]] != 2 || st.QueryCalls.Pages != 1 {
				t.Errorf("stats %v %+v", st.ByOutcome, st.QueryCalls)
			}
		})
	}
}
