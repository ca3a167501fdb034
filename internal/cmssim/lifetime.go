package cmssim

import (
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// Live is what querybasiccallinfo reports about a scheduled call at one
// instant while it is in progress.
//
// An answered inbound call moves IVR (deviceType 3, deviceNo the IVR flow,
// enterReason 0) -> skill queue (1, the skill, enterReason 28 "transferred
// to a queue") -> agent (2, the agent, enterReason 0) at whole seconds after
// its start; an abandoned one stops in the IVR or the queue. An outbound
// call stays at its agent. waitTime grows while the call is queued and then
// stays, totalTalkingTimes grows from the answer, logonTimes is the number
// of seconds since the start.
type Live struct {
	DeviceType  int
	DeviceNo    int
	EnterReason int
	PartyNum    int
	WaitTime    int // seconds queued so far
	TalkingTime int // totalTalkingTimes: seconds since the answer
	LogonTime   int // logonTimes: seconds since the start
}

// Device types and enter reasons of the live phases (codes.md).
const (
	deviceSkillQueue = 1
	deviceAgent      = 2
	deviceIVR        = 3
	enterNormal      = 0
	enterQueued      = 28 // successfully transferred to a queue
)

// LiveAt returns the call's live state at t; false when t is before its
// start or at or after its end (querybasiccallinfo answers "no data").
func (c Call) LiveAt(t time.Time) (Live, bool) {
	if t.Before(c.WaitBegin) || !t.Before(c.CallEnd) {
		return Live{}, false
	}
	e := int(t.Sub(c.WaitBegin) / time.Second)
	l := Live{LogonTime: e, PartyNum: 1}
	if !c.Inbound {
		l.DeviceType, l.DeviceNo, l.EnterReason, l.PartyNum = deviceAgent, c.AgentID, enterNormal, 2
		l.TalkingTime = max(0, e-c.RingSeconds)
		return l, true
	}
	queued, atAgent := c.IVRSeconds, c.IVRSeconds+c.QueueSeconds
	switch {
	case e < queued:
		l.DeviceType, l.DeviceNo, l.EnterReason = deviceIVR, c.IVRDevice, enterNormal
	case e < atAgent || c.Outcome != CallAnswered:
		l.DeviceType, l.DeviceNo, l.EnterReason = deviceSkillQueue, c.SkillID, enterQueued
		l.WaitTime = e - queued
	default:
		l.DeviceType, l.DeviceNo, l.EnterReason, l.PartyNum = deviceAgent, c.AgentID, enterNormal, 2
		l.WaitTime = c.QueueSeconds
		l.TalkingTime = max(0, e-atAgent-c.RingSeconds)
	}
	return l, true
}

// liveCallFeatures maps a scheduled call type to the callFeature of its live
// record (codes.md): customer, toll customer, agent, or the outbound kind.
var liveCallFeatures = map[int]int64{0: 0, 1: 0, 5: 2, 7: 1, 8: 1, 41: 41, 43: 43, 44: 44}

// liveValues replaces the generated record's fields that follow the call
// (gen.live). The rest of the record stays drawn from the key hash, with the
// same envelope variant and quirks as without a schedule.
type liveValues struct {
	Live
	time                  int64
	callingNum, calledNum string
	mediaType             int
	callFeature           int64
	skillID               int
	skillName             string
}

func newLiveValues(c Call, l Live) *liveValues {
	skill := c.SkillID
	if skill == 0 { // abandoned in the IVR: the skill its flow routes to
		skill = c.VDN*10 + 1
	}
	name := skillNames[skill%len(skillNames)]
	if c.MediaType == 53 {
		name = "defaultWebChatSkill"
	}
	return &liveValues{Live: l, time: c.WaitBegin.UnixMilli(), callingNum: c.CallerNo, calledNum: c.CalleeNo,
		mediaType: c.MediaType, callFeature: liveCallFeatures[c.CallType], skillID: skill, skillName: name}
}

func (l *liveValues) num(name string, v int64) int64 {
	switch name {
	case "time":
		return l.time
	case "deviceType":
		return int64(l.DeviceType)
	case "deviceNo":
		return int64(l.DeviceNo)
	case "partyNum":
		return int64(l.PartyNum)
	case "callFeature":
		return l.callFeature
	case "mediaType":
		return int64(l.mediaType)
	case "waitTime":
		return int64(l.WaitTime)
	case "totalTalkingTimes":
		return int64(l.TalkingTime)
	case "logonTimes":
		return int64(l.LogonTime)
	case "enterReason":
		return int64(l.EnterReason)
	case "callSkill": // the numeric form
		return int64(l.skillID)
	}
	return v
}

func (l *liveValues) str(name, s string) string {
	switch name {
	case "callingNum":
		return l.callingNum
	case "calledNum":
		return l.calledNum
	case "callSkill":
		if s != "" { // an empty callSkill stays a quirk of the key
			return l.skillName
		}
	}
	return s
}

// LiveResponse returns the querybasiccallinfo body the server sends for key
// at t: the call's live record in the key's envelope variant, with the
// key's quirks. false when the key is not a scheduled call or the call is
// not in progress at t (the server then answers "no data").
func (s *Schedule) LiveResponse(key extract.Key, t time.Time) (Response, Live, bool) {
	c, l, st := s.liveLookup(key, t)
	if st != liveInProgress {
		return Response{}, Live{}, false
	}
	h := keyHash(s.seed, key)
	g := gen{fields: map[string]any{}, quirks: map[string]bool{}, live: newLiveValues(c, l)}
	env := envelopeFor(h)
	g.b = appendDataEnvelope(nil, env, h, key, &g)
	delete(g.quirks, QuirkUnknownCode) // every coded field follows the call
	resp := Response{Envelope: env, Body: g.b, Fields: g.fields}
	for _, q := range allQuirks {
		if g.quirks[q] {
			resp.Quirks = append(resp.Quirks, q)
		}
	}
	return resp, l, true
}

// liveState says why querybasiccallinfo answered as it did under a schedule.
type liveState int

const (
	liveUnknown liveState = iota // not a scheduled call
	liveNotStarted
	liveInProgress
	liveEnded
)

// liveLookup finds key's call and its state at t.
func (s *Schedule) liveLookup(key extract.Key, t time.Time) (Call, Live, liveState) {
	c, ok := s.Lookup(key.CCID, key.CallID)
	if !ok || c.VDN != key.VDN {
		return Call{}, Live{}, liveUnknown
	}
	if t.Before(c.WaitBegin) {
		return c, Live{}, liveNotStarted
	}
	l, ok := c.LiveAt(t)
	if !ok {
		return c, Live{}, liveEnded
	}
	return c, l, liveInProgress
}

// appendLive writes the querybasiccallinfo answer under a schedule: the
// call's live record while it is in progress, "no data" otherwise (in a
// no-data form chosen by the key's hash).
func (s *Server) appendLive(b []byte, env string, h uint64, key extract.Key) []byte {
	cs := s.calls
	c, l, st := cs.sched.liveLookup(key, cs.sched.Now())
	cs.live[st].Add(1)
	if st != liveInProgress {
		s.counts[outNoData].Add(1)
		return appendNoDataEnvelope(b, env, noDataForms[mix(h^saltNoData)%uint64(len(noDataForms))])
	}
	s.counts[outOK].Add(1)
	g := gen{live: newLiveValues(c, l)}
	return appendDataEnvelope(b, env, h, key, &g)
}
