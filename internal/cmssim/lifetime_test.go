package cmssim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// TestLiveAt walks every call of three hours second by second and checks
// the path and the growing durations.
func TestLiveAt(t *testing.T) {
	t.Parallel()
	s := mustSchedule(t, 5, testCalls(newFakeClock(nextDay1)))
	paths := map[string]int{}
	for _, c := range s.Calls(1, 26, day, day.Add(3*time.Hour), DirectionBoth) {
		if _, ok := c.LiveAt(c.WaitBegin.Add(-time.Millisecond)); ok {
			t.Fatalf("%s live before its start", c.CallID)
		}
		if _, ok := c.LiveAt(c.CallEnd); ok {
			t.Fatalf("%s live at its end", c.CallID)
		}
		var path []int
		var prev Live
		for at := c.WaitBegin; at.Before(c.CallEnd); at = at.Add(time.Second) {
			l, ok := c.LiveAt(at)
			if !ok {
				t.Fatalf("%s not live at %v", c.CallID, at.Sub(c.WaitBegin))
			}
			e := int(at.Sub(c.WaitBegin) / time.Second)
			if l.LogonTime != e || l.WaitTime < prev.WaitTime || l.TalkingTime < prev.TalkingTime ||
				l.TalkingTime > prev.TalkingTime+1 || l.WaitTime+l.TalkingTime > e {
				t.Fatalf("%s at %ds: %+v after %+v", c.CallID, e, l, prev)
			}
			if len(path) == 0 || path[len(path)-1] != l.DeviceType {
				path = append(path, l.DeviceType)
				if len(path) > 1 && l.EnterReason == prev.EnterReason {
					t.Errorf("%s: enterReason %d unchanged on moving to device %d", c.CallID, l.EnterReason, l.DeviceType)
				}
			}
			wantNo := map[int]int{deviceIVR: c.IVRDevice, deviceSkillQueue: c.SkillID, deviceAgent: c.AgentID}[l.DeviceType]
			if l.DeviceNo != wantNo || wantNo == 0 {
				t.Fatalf("%s: device %d number %d, want %d", c.CallID, l.DeviceType, l.DeviceNo, wantNo)
			}
			prev = l
		}
		if c.Answered() && prev.TalkingTime != c.TalkSeconds-1 {
			t.Errorf("%s: last talk %d, talk seconds %d", c.CallID, prev.TalkingTime, c.TalkSeconds)
		}
		if c.Inbound && prev.WaitTime != c.QueueSeconds-boolInt(c.Outcome == CallAbandonedQueue) {
			t.Errorf("%s: last wait %d, queue seconds %d", c.CallID, prev.WaitTime, c.QueueSeconds)
		}
		want := map[string][]int{
			"true/" + CallAnswered:       {deviceIVR, deviceSkillQueue, deviceAgent},
			"true/" + CallAbandonedIVR:   {deviceIVR},
			"true/" + CallAbandonedQueue: {deviceIVR, deviceSkillQueue},
			"false/" + CallAnswered:      {deviceAgent},
			"false/" + CallNotConnected:  {deviceAgent},
		}[fmt.Sprint(c.Inbound, "/", c.Outcome)]
		if !slices.Equal(path, want) {
			t.Errorf("%s (%v %s): path %v, want %v", c.CallID, c.Inbound, c.Outcome, path, want)
		}
		paths[fmt.Sprint(path)]++
	}
	if len(paths) < 4 {
		t.Errorf("paths %v", paths)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// liveServer starts a TLS simulator with the test schedule on clock.
func liveServer(t *testing.T, clock *fakeClock, edit func(*Config)) (*Server, *client) {
	t.Helper()
	calls := testCalls(clock)
	cfg := Config{Seed: 9, Calls: &calls}
	if edit != nil {
		edit(&cfg)
	}
	s := start(t, cfg, false)
	return s, newClient(t, s)
}

// TestLiveOverHTTPS asks querybasiccallinfo about calls before, during each
// phase of, and after their lives.
func TestLiveOverHTTPS(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(day)
	s, c := liveServer(t, clock, nil)
	sched := s.Schedule()
	var answered, outbound Call
	for _, call := range sched.Calls(1, 25, day.Add(9*time.Hour), day.Add(10*time.Hour), DirectionBoth) {
		switch {
		case call.Inbound && call.Answered() && call.QueueSeconds > 2 && answered.CallID == "":
			answered = call
		case !call.Inbound && call.Answered() && outbound.CallID == "":
			outbound = call
		}
	}
	type ask struct {
		name   string
		key    extract.Key
		at     time.Time
		device int // 0 = no data
	}
	phase := func(c Call, secs int) time.Time {
		return c.WaitBegin.Add(time.Duration(secs)*time.Second + 300*time.Millisecond)
	}
	asks := []ask{
		{"before the start", answered.Key(), answered.WaitBegin.Add(-time.Millisecond), 0},
		{"at the start", answered.Key(), answered.WaitBegin, deviceIVR},
		{"in the IVR", answered.Key(), phase(answered, answered.IVRSeconds-1), deviceIVR},
		{"queued", answered.Key(), phase(answered, answered.IVRSeconds+1), deviceSkillQueue},
		{"ringing", answered.Key(), phase(answered, answered.IVRSeconds+answered.QueueSeconds), deviceAgent},
		{"talking", answered.Key(), phase(answered, answered.IVRSeconds+answered.QueueSeconds+answered.RingSeconds+3), deviceAgent},
		{"last instant", answered.Key(), answered.CallEnd.Add(-time.Millisecond), deviceAgent},
		{"at the end", answered.Key(), answered.CallEnd, 0},
		{"next day", answered.Key(), answered.CallEnd.Add(24 * time.Hour), 0},
		{"outbound ringing", outbound.Key(), phase(outbound, 0), deviceAgent},
		{"outbound talking", outbound.Key(), phase(outbound, outbound.RingSeconds+1), deviceAgent},
		{"wrong vdn", extract.Key{CCID: 1, VDN: 26, CallID: answered.CallID}, phase(answered, 1), 0},
		{"unknown id", extract.Key{CCID: 1, VDN: 25, CallID: "1762523104-538062"}, phase(answered, 1), 0},
	}
	var golden bytes.Buffer
	want := LiveStats{}
	for _, a := range asks {
		clock.Set(a.at)
		r := c.query(t, a.key)
		code, _ := codeOf(t, r.body)
		_, obj := envelopeOf(t, r.body)
		resp, live, ok := sched.LiveResponse(a.key, a.at)
		switch {
		case code != "0100000" && code != "0":
			t.Errorf("%s: code %q: %s", a.name, code, r.body)
		case a.device == 0 && (ok || len(obj) != 0):
			t.Errorf("%s: want no data, got %s", a.name, r.body)
		case a.device != 0 && (!ok || !bytes.Equal(r.body, resp.Body) || live.DeviceType != a.device):
			t.Errorf("%s: live %v device %d, want %d; body\n%s\nLiveResponse\n%s", a.name, ok, live.DeviceType, a.device, r.body, resp.Body)
		}
		switch {
		case a.device != 0:
			want.InProgress++
			checkLiveFields(t, a.name, resp, live, a.key)
			fmt.Fprintf(&golden, "%s %s %s\n", a.name, a.at.Format(time.RFC3339Nano), r.body)
		case a.name == "before the start":
			want.NotStarted++
		case a.name == "wrong vdn" || a.name == "unknown id":
			want.Unknown++
		default:
			want.Ended++
		}
	}
	st := s.Stats()
	if st.Live != want || st.ByEndpoint[EndpointQuery] != int64(len(asks)) || st.ByOutcome[OutcomeOK] != want.InProgress ||
		st.ByOutcome[OutcomeNoData] != int64(len(asks))-want.InProgress {
		t.Errorf("stats live %+v (want %+v), by endpoint %v, by outcome %v", st.Live, want, st.ByEndpoint, st.ByOutcome)
	}
	goldenFile(t, "live.golden", golden.Bytes())
}

// checkLiveFields checks the advertised Fields carry the live values (those
// the key's quirks did not null).
func checkLiveFields(t *testing.T, name string, resp Response, l Live, key extract.Key) {
	t.Helper()
	for f, want := range map[string]int{"deviceType": l.DeviceType, "deviceNo": l.DeviceNo, "enterReason": l.EnterReason,
		"waitTime": l.WaitTime, "totalTalkingTimes": l.TalkingTime, "logonTimes": l.LogonTime} {
		if got, ok := resp.Fields[f]; ok && got != int64(want) {
			t.Errorf("%s: %s = %v, want %d", name, f, got, want)
		}
	}
	if slices.Contains(resp.Quirks, QuirkUnknownCode) {
		t.Errorf("%s: live record with an unknown code", name)
	}
	var top map[string]json.RawMessage
	must(t, json.Unmarshal(resp.Body, &top))
	if len(top) == 0 {
		t.Errorf("%s (%v): empty body", name, key)
	}
}

// TestLiveFaultsStillApply: the hash-chosen no-data and permanent shares and
// transient faults keep working under a schedule.
func TestLiveFaultsStillApply(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(day)
	s, c := liveServer(t, clock, func(cfg *Config) { cfg.PermanentShare = 1 })
	call := s.Schedule().Calls(1, 25, day.Add(time.Hour), day.Add(2*time.Hour), DirectionIn)[0]
	clock.Set(call.WaitBegin.Add(time.Second))
	r := c.query(t, call.Key())
	if code, _ := codeOf(t, r.body); code != PlanFor(s.cfg, call.Key()).Code {
		t.Errorf("permanent share under a schedule: %s", r.body)
	}
}

// goldenFile is golden with the package's -update flag.
func goldenFile(t *testing.T, name string, got []byte) { t.Helper(); golden(t, name, got) }
