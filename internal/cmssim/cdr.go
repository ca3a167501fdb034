package cmssim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/cmsetl/cms-etl/extract"
)

// querycalldetailbyid (cms-discovery.md section 2) as the simulator serves
// it:
//
//   - Body: {"ccId":1,"isCallin":"true","callId":"..."} flat, or wrapped as
//     {"queryParam":{...}}; CallsConfig.CDRBodyShape says which the server
//     accepts, the other gets 0100002. isCallin (lowercase i) is required.
//   - Answer: {"result":"0","resultCode":"0100000","resultDesc":{CDR},
//     "resultDatas":{CDR}} for a call that is stored and retained, in the
//     direction asked; numbers are JSON numbers as in Huawei's sample.
//     Otherwise "no data": the same envelope with empty objects.
//   - The CDR's own result/resultCode (outbound call results) share their
//     names with the envelope's.

// CDR is the result object querycalldetailbyid sends for a call. Fields
// marked omitempty are absent from the JSON when empty, as documented for
// the outbound-only ones and as the simulator does for a missing agent or
// skill.
type CDR struct {
	VDN           int    `json:"vdn"`
	CallID        string `json:"callId"`
	CallerNo      string `json:"callerNo"`
	CalleeNo      string `json:"calleeNo"`
	CallType      int    `json:"callType"`
	AgentID       int    `json:"agentId,omitempty"`
	SkillID       int    `json:"skillId,omitempty"`
	AnonyCall     *int   `json:"anonyCall,omitempty"` // inbound calls only
	QueueWaitTime int    `json:"queueWaitTime"`
	IVRCallTime   int    `json:"ivrCallTime"`
	AckTime       int    `json:"ackTime"`
	CallTime      int    `json:"callTime"`
	ReleaseCause  int    `json:"releaseCause"`
	BeginTime     string `json:"beginTime,omitempty"` // "yyyy-MM-dd HH:mm:ss" in the tenant zone; 41/43 outbound only
	EndTime       string `json:"endTime,omitempty"`
	Result        string `json:"result,omitempty"` // outbound only: the call's result, not the envelope's
	ResultCode    string `json:"resultCode,omitempty"`
	BusiResult    string `json:"busiResult,omitempty"`
	BusiSubStatus string `json:"busiSubStatus,omitempty"`
}

// tenantLayout is the CDR's wall-clock format, "yyyy-MM-dd HH:mm:ss".
const tenantLayout = "2006-01-02 15:04:05"

// CDR returns the result object querycalldetailbyid serves for c.
func (s *Schedule) CDR(c Call) CDR {
	d := CDR{VDN: c.VDN, CallID: c.CallID, CallerNo: c.CallerNo, CalleeNo: c.CalleeNo, CallType: c.CallType,
		AgentID: c.AgentID, SkillID: c.SkillID, QueueWaitTime: c.QueueSeconds, IVRCallTime: c.IVRSeconds,
		AckTime: c.RingSeconds, CallTime: c.TalkSeconds, ReleaseCause: c.ReleaseCause,
		Result: c.Result, ResultCode: c.ResultCode, BusiResult: c.BusiResult, BusiSubStatus: c.BusiSubStatus}
	if c.Inbound {
		d.AnonyCall = &c.AnonyCall
	}
	if c.HasOutboundTimes() {
		d.BeginTime = c.WaitBegin.In(s.cfg.TenantZone).Format(tenantLayout)
		d.EndTime = c.CallEnd.In(s.cfg.TenantZone).Format(tenantLayout)
	}
	return d
}

// CDRObject returns the result object's JSON exactly as served, with the
// "agentId " key under CallsConfig.CDRAgentIDSpace.
func (s *Schedule) CDRObject(c Call) []byte {
	b, err := json.Marshal(s.CDR(c))
	if err != nil { // cannot happen: plain fields
		panic(err)
	}
	if s.cfg.CDRAgentIDSpace {
		b = bytes.Replace(b, []byte(`"agentId":`), []byte(`"agentId ":`), 1)
	}
	return b
}

type callDetailRequest struct {
	ccID    int
	inbound bool
	callID  string
}

// parseCallDetail decodes a body in the shapes shape allows.
func parseCallDetail(body []byte, shape string) (callDetailRequest, error) {
	m, err := parseObject(body)
	if err != nil {
		return callDetailRequest{}, err
	}
	if present(m, "queryParam") {
		if shape == CDRBodyFlat {
			return callDetailRequest{}, missingParam("ccId")
		}
		if m, err = parseObject(m["queryParam"]); err != nil {
			return callDetailRequest{}, invalidParam("Invalid param, queryParam must be a JSON object")
		}
	} else if shape == CDRBodyWrapped {
		return callDetailRequest{}, missingParam("queryParam")
	}
	var q callDetailRequest
	for _, name := range []string{"ccId", "isCallin", "callId"} {
		if !present(m, name) {
			return q, missingParam(name)
		}
	}
	cc, err := intParam(m, "ccId", false, 1, extract.MaxCCID)
	if err != nil {
		return q, err
	}
	q.ccID = int(cc)
	if q.inbound, err = boolStringParam(m, "isCallin"); err != nil {
		return q, err
	}
	if err := json.Unmarshal(m["callId"], &q.callID); err != nil {
		return q, badParam("callId", "must be a string")
	}
	if err := extract.ValidateCallID(q.callID); err != nil {
		return q, badParam("callId", "%v", err)
	}
	return q, nil
}

const (
	cdrFound    = `{"result":"0","resultCode":"0100000","resultDesc":`
	cdrNoData   = `{"result":"0","resultCode":"0100000","resultDesc":{},"resultDatas":{}}`
	cdrDatasKey = `,"resultDatas":`
)

// callDetail answers POST querycalldetailbyid. The shares of Config apply
// as to querybasiccallinfo, keyed by (ccId, the VDN in the callId, callId):
// permanent failures, transient faults, then "no data".
func (s *Server) callDetail(w http.ResponseWriter, r *http.Request, body []byte) {
	cs := s.calls
	shape := CDRBodyBoth
	if cs.sched != nil {
		shape = cs.sched.cfg.CDRBodyShape
	}
	q, err := parseCallDetail(body, shape)
	var ip invalidParam
	if errors.As(err, &ip) {
		cs.cdrReject.Add(1)
		s.counts[outBadRequest].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, EnvelopeBoth, codeText{"0100002", string(ip)}))
		return
	}
	_, vdn, _, _ := parseScheduledID(q.callID)
	key := extract.Key{CCID: q.ccID, VDN: vdn, CallID: q.callID}
	h := keyHash(s.cfg.Seed, key)
	switch plan := planFor(s.cfg, h); {
	case plan.Outcome == OutcomePermanent:
		s.counts[outPermanent].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, EnvelopeBoth, permanentCode(plan.Code)))
		return
	case plan.Fault != "" && cs.faultAttempt("querycalldetailbyid/"+key.String(), s.cfg.TransientAttempts):
		s.fault(w, r, plan.Fault, h, EnvelopeBoth, key)
		return
	case plan.Outcome == OutcomeNoData:
		s.counts[outNoData].Add(1)
		s.writeJSON(w, http.StatusOK, []byte(cdrNoData))
		return
	}
	c, ok := Call{}, false
	if cs.sched != nil {
		c, ok = cs.sched.Lookup(q.ccID, q.callID)
	}
	now := cs.now()
	switch {
	case !ok:
		cs.cdrUnknown.Add(1)
	case c.Inbound != q.inbound && !c.BothPasses:
		cs.wrongDir.Add(1)
	case c.LogDate.After(now):
		cs.notStored.Add(1)
	case !cs.sched.Retained(c, now):
		cs.expired.Add(1)
	default:
		obj := cs.sched.CDRObject(c)
		out := make([]byte, 0, len(cdrFound)+len(cdrDatasKey)+2*len(obj)+1)
		out = append(out, cdrFound...)
		out = append(out, obj...)
		out = append(out, cdrDatasKey...)
		out = append(out, obj...)
		out = append(out, '}')
		cs.found.Add(1)
		s.counts[outOK].Add(1)
		s.writeJSON(w, http.StatusOK, out)
		return
	}
	s.counts[outNoData].Add(1)
	s.writeJSON(w, http.StatusOK, []byte(cdrNoData))
}
