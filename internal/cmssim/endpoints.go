package cmssim

import (
	"sync"
	"sync/atomic"
	"time"
)

// Paths of the finished-call interfaces (cms-discovery.md sections 1 and 2).
const (
	PathQueryCalls = "/rest/cmsapp/v2/openapi/vdn/querycalls"
	PathCallDetail = "/rest/cmsapp/v1/openapi/calldata/querycalldetailbyid"
)

// Endpoint names, the keys of Stats.ByEndpoint.
const (
	EndpointQuery      = "querybasiccallinfo"
	EndpointPing       = "ping"
	EndpointQueryCalls = "querycalls"
	EndpointCallDetail = "querycalldetailbyid"
)

type endpoint int

const (
	epQuery endpoint = iota
	epPing
	epQueryCalls
	epCallDetail
	numEndpoints
)

var endpointNames = [numEndpoints]string{EndpointQuery, EndpointPing, EndpointQueryCalls, EndpointCallDetail}

// LiveStats count querybasiccallinfo answers under a schedule, by what the
// call was doing at the time of the request.
type LiveStats struct {
	InProgress int64 `json:"in_progress"` // answered with the live record
	NotStarted int64 `json:"not_started"` // no data: before the call's start
	Ended      int64 `json:"ended"`       // no data: at or after its end
	Unknown    int64 `json:"unknown"`     // no data: not a scheduled call
}

// QueryCallsStats count querycalls answers.
type QueryCallsStats struct {
	Pages       int64 `json:"pages"`        // successful answers
	Rows        int64 `json:"rows"`         // rows sent in them
	ShortPages  int64 `json:"short_pages"`  // pages cut by CallsConfig.ShortPageShare
	CountDrifts int64 `json:"count_drifts"` // counts raised by CallsConfig.CountDriftShare
	Rejected    int64 `json:"rejected"`     // 0100002: bad body, window or limit
}

// CallDetailStats count querycalldetailbyid answers.
type CallDetailStats struct {
	Found          int64 `json:"found"`           // a CDR
	Unknown        int64 `json:"unknown"`         // no data: not a scheduled call
	NotStored      int64 `json:"not_stored"`      // no data: not ended, or before its logDate
	Expired        int64 `json:"expired"`         // no data: past retention
	WrongDirection int64 `json:"wrong_direction"` // no data: isCallin does not match the call
	Rejected       int64 `json:"rejected"`        // 0100002: bad body or the body shape not accepted
}

// callsState is the server's schedule (nil without Config.Calls) and the
// counters of the schedule's endpoints.
type callsState struct {
	sched *Schedule
	now   func() time.Time // the schedule's clock, else time.Now

	byEndpoint [numEndpoints]atomic.Int64
	live       [liveEnded + 1]atomic.Int64 // by liveState

	pages, rows, shortPages, countDrifts, qcRejected           atomic.Int64
	found, cdrUnknown, notStored, expired, wrongDir, cdrReject atomic.Int64

	attemptsMu sync.Mutex
	attempts   map[string]int // fault-selected querycalls pages and CDR requests
}

func newCallsState(cfg Config) *callsState {
	cs := &callsState{now: time.Now, attempts: map[string]int{}}
	if cfg.Calls != nil {
		// Config.Validate has checked cfg.Calls.
		cs.sched, _ = NewSchedule(cfg.Seed, *cfg.Calls)
		cs.now = cs.sched.Now
	}
	return cs
}

// faultAttempt counts an attempt of a fault-selected request of the
// finished-call interfaces and reports whether it still fails (as
// Server.faultAttempt does for querybasiccallinfo keys).
func (cs *callsState) faultAttempt(id string, failing int) bool {
	cs.attemptsMu.Lock()
	defer cs.attemptsMu.Unlock()
	cs.attempts[id]++
	return cs.attempts[id] <= failing
}

// fill adds the schedule's counters to a Stats snapshot.
func (cs *callsState) fill(st *Stats) {
	st.ByEndpoint = make(map[string]int64, numEndpoints)
	for i := range cs.byEndpoint {
		st.ByEndpoint[endpointNames[i]] = cs.byEndpoint[i].Load()
	}
	st.Live = LiveStats{InProgress: cs.live[liveInProgress].Load(), NotStarted: cs.live[liveNotStarted].Load(),
		Ended: cs.live[liveEnded].Load(), Unknown: cs.live[liveUnknown].Load()}
	st.QueryCalls = QueryCallsStats{Pages: cs.pages.Load(), Rows: cs.rows.Load(), ShortPages: cs.shortPages.Load(),
		CountDrifts: cs.countDrifts.Load(), Rejected: cs.qcRejected.Load()}
	st.CallDetail = CallDetailStats{Found: cs.found.Load(), Unknown: cs.cdrUnknown.Load(), NotStored: cs.notStored.Load(),
		Expired: cs.expired.Load(), WrongDirection: cs.wrongDir.Load(), Rejected: cs.cdrReject.Load()}
}

// Schedule returns the server's call schedule, nil without Config.Calls.
func (s *Server) Schedule() *Schedule { return s.calls.sched }
