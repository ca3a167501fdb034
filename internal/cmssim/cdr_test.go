package cmssim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func flatBody(c Call, in bool) map[string]any {
	return map[string]any{"ccId": c.CCID, "isCallin": fmt.Sprint(in), "callId": c.CallID}
}

func wrapped(m map[string]any) map[string]any { return map[string]any{"queryParam": m} }

func (c *client) callDetail(t *testing.T, body any) (reply, string, map[string]json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(body)
	must(t, err)
	r, err := c.post(t.Context(), PathCallDetail, b)
	must(t, err)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	var code string
	must(t, json.Unmarshal(top["resultCode"], &code))
	return r, code, top
}

// firstOf returns the first call of the day matching pick.
func firstOf(t *testing.T, s *Schedule, pick func(Call) bool) Call {
	t.Helper()
	for _, c := range s.Calls(1, 25, day.Add(8*time.Hour), day.Add(12*time.Hour), DirectionBoth) {
		if pick(c) {
			return c
		}
	}
	t.Fatal("no such call")
	return Call{}
}

func TestCallDetailShapes(t *testing.T) {
	t.Parallel()
	for _, shape := range []string{CDRBodyFlat, CDRBodyWrapped, CDRBodyBoth} {
		t.Run(shape, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock(nextDay1)
			s, c := liveServer(t, clock, func(cfg *Config) { cfg.Calls.CDRBodyShape = shape })
			call := firstOf(t, s.Schedule(), func(c Call) bool { return c.Inbound })
			for _, tc := range []struct {
				name     string
				body     any
				accepted bool
			}{
				{"flat", flatBody(call, true), shape != CDRBodyWrapped},
				{"wrapped", wrapped(flatBody(call, true)), shape != CDRBodyFlat},
			} {
				_, code, top := c.callDetail(t, tc.body)
				var desc string
				json.Unmarshal(top["resultDesc"], &desc)
				switch {
				case tc.accepted && (code != "0100000" || len(top["resultDesc"]) < 10):
					t.Errorf("%s body: code %s", tc.name, code)
				case !tc.accepted && (code != "0100002" || !strings.Contains(desc, "must have parameter")):
					t.Errorf("%s body: code %s desc %q, want 0100002", tc.name, code, desc)
				}
			}
		})
	}
}

func TestCallDetailRejects(t *testing.T) {
	t.Parallel()
	s, c := liveServer(t, newFakeClock(nextDay1), nil)
	call := firstOf(t, s.Schedule(), func(c Call) bool { return true })
	ok := flatBody(call, call.Inbound)
	tests := []struct {
		name string
		body any
		desc string
	}{
		{"no isCallin", with(ok, "isCallin", nil), "Invalid param, must have parameter: 'isCallin'"},
		{"isCallIn spelling", with(ok, "isCallin", nil, "isCallIn", "true"), "must have parameter: 'isCallin'"},
		{"isCallin boolean", with(ok, "isCallin", true), "isCallin"},
		{"no callId", with(ok, "callId", nil), "must have parameter: 'callId'"},
		{"callId number", with(ok, "callId", 17), "callId"},
		{"callId letters", with(ok, "callId", "abc-1"), "callId"},
		{"ccId zero", with(ok, "ccId", 0), "ccId"},
		{"queryParam not an object", map[string]any{"queryParam": "x"}, "queryParam"},
		{"wrapped, missing isCallin", wrapped(with(ok, "isCallin", nil)), "must have parameter: 'isCallin'"},
	}
	for _, tc := range tests {
		_, code, top := c.callDetail(t, tc.body)
		var desc string
		json.Unmarshal(top["resultDesc"], &desc)
		if code != "0100002" || !strings.Contains(desc, tc.desc) {
			t.Errorf("%s: code %s desc %q, want 0100002 with %q", tc.name, code, desc, tc.desc)
		}
	}
	if st := s.Stats(); st.CallDetail.Rejected != int64(len(tests)) || st.ByEndpoint[EndpointCallDetail] != int64(len(tests)) {
		t.Errorf("stats %+v, by endpoint %v", st.CallDetail, st.ByEndpoint)
	}
}

// TestCallDetailAnswers covers found and each "no data" case over HTTPS.
func TestCallDetailAnswers(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	s, c := liveServer(t, clock, func(cfg *Config) {
		cfg.Calls.TenantZone = time.FixedZone("BRT", -3*3600)
		cfg.Calls.CDRAgentIDSpace = true
	})
	sched := s.Schedule()
	in := firstOf(t, sched, func(c Call) bool { return c.Inbound && c.Answered() })
	out := firstOf(t, sched, func(c Call) bool { return c.HasOutboundTimes() && c.Answered() })
	type ask struct {
		name  string
		call  Call
		in    bool
		now   time.Time
		found bool
	}
	asks := []ask{
		{"inbound", in, true, nextDay1, true},
		{"outbound with times", out, false, nextDay1, true},
		{"wrong direction", in, false, nextDay1, false},
		{"before the end", in, true, in.CallEnd.Add(-time.Second), false},
		{"ended, not stored", in, true, in.LogDate.Add(-time.Millisecond), false},
		{"at logDate", in, true, in.LogDate, true},
		{"expired", in, true, day.Add(48 * time.Hour), false},
		{"unknown", Call{CCID: 1, CallID: "1762523104-538062"}, true, nextDay1, false},
		{"other call center", Call{CCID: 2, CallID: in.CallID}, true, nextDay1, false},
	}
	var gold bytes.Buffer
	for _, a := range asks {
		clock.Set(a.now)
		r, code, top := c.callDetail(t, flatBody(a.call, a.in))
		if code != "0100000" || string(top["result"]) != `"0"` {
			t.Fatalf("%s: %s", a.name, r.body)
		}
		fmt.Fprintf(&gold, "%s\n%s\n", a.name, r.body)
		if !a.found {
			if string(top["resultDesc"]) != "{}" || string(top["resultDatas"]) != "{}" {
				t.Errorf("%s: want no data, got %s", a.name, r.body)
			}
			continue
		}
		obj := sched.CDRObject(a.call)
		if !bytes.Equal(top["resultDesc"], obj) || !bytes.Equal(top["resultDatas"], obj) {
			t.Errorf("%s: served\n%s\nCDRObject\n%s", a.name, r.body, obj)
		}
		checkCDR(t, a.call, top["resultDesc"])
	}
	want := CallDetailStats{Found: 3, Unknown: 2, NotStored: 2, Expired: 1, WrongDirection: 1}
	if st := s.Stats(); st.CallDetail != want || st.ByOutcome[OutcomeOK] != 3 || st.ByOutcome[OutcomeNoData] != 6 {
		t.Errorf("stats %+v, want %+v; by outcome %v", st.CallDetail, want, st.ByOutcome)
	}
	golden(t, "calldetail.golden", gold.Bytes())
}

// checkCDR decodes a served object independently and compares it with the
// call: JSON numbers, the spaced agentId key, the outbound-only fields and
// their zone.
func checkCDR(t *testing.T, c Call, raw []byte) {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	must(t, d.Decode(&m))
	num := func(k string) any {
		v, ok := m[k]
		if !ok {
			return nil
		}
		n, isNum := v.(json.Number)
		if !isNum {
			t.Errorf("%s: %s = %#v is not a JSON number", c.CallID, k, v)
			return nil
		}
		i, _ := n.Int64()
		return int(i)
	}
	if _, plain := m["agentId"]; plain {
		t.Errorf("%s: agentId without the trailing space", c.CallID)
	}
	for k, want := range map[string]any{"vdn": c.VDN, "callType": c.CallType, "agentId ": c.AgentID, "skillId": c.SkillID,
		"queueWaitTime": c.QueueSeconds, "ivrCallTime": c.IVRSeconds, "ackTime": c.RingSeconds, "callTime": c.TalkSeconds,
		"releaseCause": c.ReleaseCause} {
		if (k == "agentId " || k == "skillId") && want == 0 {
			want = nil // omitted when there is none
		}
		if got := num(k); got != want {
			t.Errorf("%s: %s = %v, want %v", c.CallID, k, got, want)
		}
	}
	if got := num("anonyCall"); c.Inbound && got != c.AnonyCall || !c.Inbound && got != nil {
		t.Errorf("%s: anonyCall %v", c.CallID, got)
	}
	if m["callId"] != c.CallID || m["callerNo"] != c.CallerNo || m["calleeNo"] != c.CalleeNo {
		t.Errorf("%s: ids %v", c.CallID, m)
	}
	for k, want := range map[string]string{"result": c.Result, "resultCode": c.ResultCode, "busiResult": c.BusiResult, "busiSubStatus": c.BusiSubStatus} {
		if got, _ := m[k].(string); got != want {
			t.Errorf("%s: %s = %q, want %q", c.CallID, k, got, want)
		}
	}
	if c.HasOutboundTimes() {
		brt := time.FixedZone("BRT", -3*3600)
		begin, err1 := time.ParseInLocation("2006-01-02 15:04:05", m["beginTime"].(string), brt)
		end, err2 := time.ParseInLocation("2006-01-02 15:04:05", m["endTime"].(string), brt)
		if err1 != nil || err2 != nil || !begin.Equal(c.WaitBegin.Truncate(time.Second)) || !end.Equal(c.CallEnd.Truncate(time.Second)) {
			t.Errorf("%s: beginTime %v endTime %v (%v %v), want %v %v", c.CallID, m["beginTime"], m["endTime"], err1, err2, c.WaitBegin, c.CallEnd)
		}
	} else if _, ok := m["beginTime"]; ok {
		t.Errorf("%s: beginTime on a call without it", c.CallID)
	}
}

// TestCDRsOfADay compares every CDR of a simulated day served over HTTPS
// with the call, for both directions.
func TestCDRsOfADay(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(nextDay1)
	s, c := liveServer(t, clock, func(cfg *Config) {
		cfg.Calls.TenantZone = time.FixedZone("BRT", -3*3600)
		cfg.Calls.CDRAgentIDSpace = true
		cfg.Calls.CDRBodyShape = CDRBodyWrapped
	})
	calls := s.Schedule().Listed(1, 26, day.Add(18*time.Hour), day.Add(19*time.Hour), DirectionBoth, clock.Now())
	for _, call := range calls {
		_, code, top := c.callDetail(t, wrapped(flatBody(call, call.Inbound)))
		if code != "0100000" {
			t.Fatalf("%s: code %s", call.CallID, code)
		}
		checkCDR(t, call, top["resultDesc"])
	}
	if st := s.Stats().CallDetail; st.Found != int64(len(calls)) || len(calls) < 200 {
		t.Errorf("found %d of %d", st.Found, len(calls))
	}
}

// TestWithoutSchedule: the finished-call interfaces know no calls when
// Config.Calls is nil, and querybasiccallinfo behaves as before.
func TestWithoutSchedule(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Seed: 3}, false)
	c := newClient(t, s)
	now := time.Now()
	from, to := QueryWindow(now)
	p := c.queryCalls(t, map[string]any{"ccId": 1, "vdn": 1, "beginDate": from.UnixMilli(), "endDate": to.UnixMilli(), "isCallIn": "true"})
	if p.Code != "0100000" || p.N != 0 || len(p.Rows) != 0 {
		t.Errorf("querycalls: %+v", p)
	}
	if p := c.queryCalls(t, map[string]any{"ccId": 1, "vdn": 1, "beginDate": from.UnixMilli() - 1, "endDate": to.UnixMilli(), "isCallIn": "true"}); p.Code != "0100002" {
		t.Errorf("window rule without a schedule: %+v", p)
	}
	r, code, top := c.callDetail(t, map[string]any{"ccId": 1, "isCallin": "true", "callId": key1.CallID})
	if code != "0100000" || string(top["resultDesc"]) != "{}" {
		t.Errorf("querycalldetailbyid: %s", r.body)
	}
	if r := c.query(t, key1); !bytes.Equal(r.body, ResponseFor(3, key1).Body) {
		t.Errorf("querybasiccallinfo changed without a schedule")
	}
	if s.Schedule() != nil {
		t.Error("Schedule() is not nil")
	}
}

// TestCallDetailShares: the permanent, transient and no-data shares of
// Config apply to CDR requests as to querybasiccallinfo keys.
func TestCallDetailShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Config)
		// codes of the first, second and third answers for one call
		codes []string
		empty bool // the last answer has no data
	}{
		{"permanent", func(c *Config) { c.PermanentShare = 1 }, nil, false},
		{"transient", func(c *Config) {
			c.TransientShare, c.TransientKinds, c.TransientAttempts = 1, []string{FaultUnknownError}, 2
		}, []string{"0100999", "0100999", "0100000"}, false},
		{"no data", func(c *Config) { c.NoDataShare = 1 }, []string{"0100000"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := liveServer(t, newFakeClock(nextDay1), tc.edit)
			call := firstOf(t, s.Schedule(), func(c Call) bool { return c.Inbound })
			codes := tc.codes
			if codes == nil { // the plan of the call's key, as querybasiccallinfo would fail
				codes = []string{PlanFor(s.cfg, call.Key()).Code}
			}
			var top map[string]json.RawMessage
			for i, want := range codes {
				var code string
				_, code, top = c.callDetail(t, flatBody(call, true))
				if code != want {
					t.Errorf("answer %d: code %s, want %s", i+1, code, want)
				}
			}
			if got := string(top["resultDesc"]) == "{}"; tc.empty != got && codes[len(codes)-1] == "0100000" {
				t.Errorf("resultDesc %s", top["resultDesc"])
			}
		})
	}
}
