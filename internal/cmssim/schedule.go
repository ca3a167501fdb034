package cmssim

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// Direction selects calls by direction.
type Direction int

const (
	DirectionBoth Direction = iota // inbound and outbound
	DirectionIn                    // inbound only (isCallIn "true")
	DirectionOut                   // outbound only (isCallIn "false")
)

func (d Direction) matches(inbound bool) bool {
	return d == DirectionBoth || (d == DirectionIn) == inbound
}

// Outcomes of a scheduled call (Call.Outcome).
const (
	CallAnswered       = "answered"        // answered by an agent (inbound) or the callee (outbound)
	CallAbandonedIVR   = "abandoned_ivr"   // inbound, caller hung up in the IVR
	CallAbandonedQueue = "abandoned_queue" // inbound, caller hung up while queued
	CallNotConnected   = "not_connected"   // outbound, callee did not answer, busy, rejected, ...
)

// Call is one scheduled call with everything the simulator serves about it.
// It is a pure function of (seed, ccId, vdn, start second, sequence): see
// Schedule. Durations are whole seconds, and the phase boundaries fall on
// whole seconds after WaitBegin.
type Call struct {
	CCID, VDN int
	// CallID is "<start epoch seconds>-<vdn*1000 + sequence>": the prefix is
	// WaitBegin's second, the suffix makes it unique per call center (so a
	// lookup without the VDN, as querycalldetailbyid does, finds it).
	CallID  string
	Inbound bool
	// Unkeyed: querycalls lists the call without its callId
	// (CallsConfig.UnkeyedRowShare): "" or no member at all.
	Unkeyed bool
	// BothPasses: querycalls lists the call in both directions, and its
	// CDR answers either (CallsConfig.BothPassesShare).
	BothPasses bool
	// QueuedFor is how long the chat waited in a queue before WaitBegin
	// (CallsConfig.QueuedChatShare): querycalls lists its waitBegin that
	// much earlier (ListedWaitBegin), still filtering it by WaitBegin.
	QueuedFor time.Duration
	Outcome   string // Call* constants
	// WaitBegin is the start (millisecond precision), AckBegin the answer
	// and CallBegin the start of talk (equal to AckBegin; both zero when
	// never answered), CallEnd the end, LogDate the storage time: CallEnd
	// plus up to CallsConfig.SettleDelay. All UTC.
	WaitBegin, AckBegin, CallBegin, CallEnd, LogDate time.Time
	// CallerNo and CalleeNo are digit strings: for inbound calls the
	// customer and the VDN's access number, for outbound the reverse.
	CallerNo, CalleeNo string

	CallType     int // cms-discovery.md 4.1: inbound 0, 1, 5; outbound 7, 8, 41, 43, 44
	LeaveReason  int // codes.md enterReason table: 88/16/17 answered, 15/89 abandoned, 20/22/24/26/27 not connected
	MediaType    int // 5 voice, 53 social chat (inbound only)
	SubMediaType int // with MediaType 53 (cms-discovery.md 4.5); else 0 = none
	ReleaseCause int // cms-discovery.md 4.3 Table 1, rarely 1101 (a code outside the published part)

	// AgentID is the agent of an answered inbound call and of every
	// outbound call (the agent placed it); 0 = none (the CDR omits it).
	AgentID int
	// SkillID is the skill queue of inbound calls that reached the queue
	// and of outbound calls; 0 = none (the CDR omits it).
	SkillID int
	// AnonyCall is the anonymous-call flag (0 or 1) of inbound calls; the
	// CDR omits it for outbound calls.
	AnonyCall int

	// Phase durations in seconds: IVRSeconds + QueueSeconds + RingSeconds
	// + TalkSeconds = CallEnd - WaitBegin. The CDR's ivrCallTime,
	// queueWaitTime, ackTime and callTime.
	IVRSeconds, QueueSeconds, RingSeconds, TalkSeconds int

	// Outbound-only CDR fields ("" for inbound calls; BusiResult and
	// BusiSubStatus only for answered outbound calls).
	Result, ResultCode, BusiResult, BusiSubStatus string
	// IVRDevice is the IVR flow's device number while the call is in the
	// IVR (querybasiccallinfo's deviceNo).
	IVRDevice int
}

// ListedWaitBegin is the waitBegin querycalls lists: WaitBegin, earlier by
// QueuedFor.
func (c Call) ListedWaitBegin() time.Time { return c.WaitBegin.Add(-c.QueuedFor) }

// Key returns the querybasiccallinfo key of the call.
func (c Call) Key() extract.Key { return extract.Key{CCID: c.CCID, VDN: c.VDN, CallID: c.CallID} }

// Answered reports whether the call was answered.
func (c Call) Answered() bool { return c.Outcome == CallAnswered }

// HasOutboundTimes reports whether the CDR carries beginTime/endTime: only
// predictive (43) and pre-occupied (41) outbound calls (cms-discovery.md 2.4).
func (c Call) HasOutboundTimes() bool { return !c.Inbound && (c.CallType == 41 || c.CallType == 43) }

// Schedule is the deterministic set of calls of a CallsConfig under a seed.
// Every call is a pure function of (seed, ccId, vdn, second), so any window
// can be listed without state, and a callId leads back to its call. Safe for
// concurrent use.
type Schedule struct {
	seed   int64
	cfg    CallsConfig
	vdns   map[VDN]bool
	lambda float64 // calls per second per VDN
}

// NewSchedule validates cfg, applies its defaults and returns its schedule.
func NewSchedule(seed int64, cfg CallsConfig) (*Schedule, error) {
	if errs := cfg.validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg = cfg.withDefaults()
	s := &Schedule{seed: seed, cfg: cfg, vdns: make(map[VDN]bool, len(cfg.VDNs)), lambda: cfg.CallsPerMinute / 60}
	for _, v := range cfg.VDNs {
		s.vdns[v] = true
	}
	return s, nil
}

// Config returns the configuration with its defaults applied.
func (s *Schedule) Config() CallsConfig {
	c := s.cfg
	c.VDNs = slices.Clone(c.VDNs)
	return c
}

// Now reads the schedule's clock (CallsConfig.Now).
func (s *Schedule) Now() time.Time { return s.cfg.Now() }

// Scheduled reports whether (ccID, vdn) has calls.
func (s *Schedule) Scheduled(ccID, vdn int) bool { return s.vdns[VDN{ccID, vdn}] }

// Calls lists every scheduled call of (ccID, vdn) in dir (the calls a
// pass of dir lists: BothPasses calls in either) whose WaitBegin lies in
// [from, to] (both inclusive, millisecond precision), whatever the clock
// says, in the querycalls order: WaitBegin, then CallID.
func (s *Schedule) Calls(ccID, vdn int, from, to time.Time, dir Direction) []Call {
	var out []Call
	s.eachHead(ccID, vdn, from, to, func(hd *head) bool {
		if hd.listedIn(dir) {
			out = append(out, s.call(hd))
		}
		return true
	})
	return out
}

// Listed is what querycalls returns at now for the window [from, to] in
// dir, all pages together: the calls of Calls that are stored (LogDate <=
// now) and retained at now.
func (s *Schedule) Listed(ccID, vdn int, from, to time.Time, dir Direction, now time.Time) []Call {
	var out []Call
	vis := s.visibleAt(now)
	s.eachHead(ccID, vdn, from, to, func(hd *head) bool {
		if hd.listedIn(dir) && vis.stored(hd.start, hd.logDate) {
			out = append(out, s.call(hd))
		}
		return true
	})
	return out
}

// Stored reports whether querycalls and querycalldetailbyid serve c at now:
// it has been stored (LogDate <= now) and is still retained.
func (s *Schedule) Stored(c Call, now time.Time) bool {
	return s.visibleAt(now).stored(c.WaitBegin.UnixMilli(), c.LogDate.UnixMilli())
}

// Retained reports whether c is still within retention at now: by default
// while it started no earlier than yesterday 00:00 UTC; with
// CallsConfig.Retention, until WaitBegin + Retention.
func (s *Schedule) Retained(c Call, now time.Time) bool {
	return s.visibleAt(now).retained(c.WaitBegin.UnixMilli())
}

// visibility holds what decides, at one instant, which calls the
// finished-call interfaces serve; computed once per request.
type visibility struct {
	nowNs   int64 // the instant
	floorNs int64 // the earliest start still retained
}

func (s *Schedule) visibleAt(now time.Time) visibility {
	v := visibility{nowNs: now.UnixNano()}
	if s.cfg.Retention > 0 {
		v.floorNs = v.nowNs - int64(s.cfg.Retention) + 1 // kept while now < start + Retention
	} else {
		v.floorNs = yesterdayUTC(now).UnixNano()
	}
	return v
}

func (v visibility) retained(startMs int64) bool { return startMs*1e6 >= v.floorNs }

func (v visibility) stored(startMs, logDateMs int64) bool {
	return logDateMs*1e6 <= v.nowNs && v.retained(startMs)
}

// yesterdayUTC is 00:00 UTC of the day before now's UTC day.
func yesterdayUTC(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d-1, 0, 0, 0, 0, time.UTC)
}

// Lookup finds the call with callID in call center ccID, wherever the clock
// is. The VDN comes from the callId's suffix.
func (s *Schedule) Lookup(ccID int, callID string) (Call, bool) {
	sec, vdn, seq, ok := parseScheduledID(callID)
	if !ok || !s.Scheduled(ccID, vdn) {
		return Call{}, false
	}
	heads := s.heads(ccID, vdn, sec, nil)
	for i := range heads {
		if heads[i].seq == seq {
			return s.call(&heads[i]), true
		}
	}
	return Call{}, false
}

// parseScheduledID splits "<seconds>-<vdn*1000+seq>".
func parseScheduledID(id string) (sec int64, vdn, seq int, ok bool) {
	if extract.ValidateCallID(id) != nil {
		return 0, 0, 0, false
	}
	p, q, _ := strings.Cut(id, "-")
	sec, err1 := strconv.ParseInt(p, 10, 64)
	suffix, err2 := strconv.Atoi(q)
	if err1 != nil || err2 != nil || strconv.Itoa(suffix) != q { // leading zeros are not ours
		return 0, 0, 0, false
	}
	return sec, suffix / maxPerSecond, suffix % maxPerSecond, true
}

// maxPerSecond is how many calls one VDN can start in one second: the
// sequence part of the callId suffix.
const maxPerSecond = 1000

// eachHead calls fn for the calls of (ccID, vdn) with a start in [from,
// to], in order, until fn returns false.
func (s *Schedule) eachHead(ccID, vdn int, from, to time.Time, fn func(*head) bool) {
	if !s.Scheduled(ccID, vdn) || to.Before(from) {
		return
	}
	lo, hi := from.UnixMilli(), to.UnixMilli()
	var buf []head
	for sec := floorDiv(lo, 1000); sec <= floorDiv(hi, 1000); sec++ {
		buf = s.heads(ccID, vdn, sec, buf[:0])
		for i := range buf {
			if buf[i].start < lo || buf[i].start > hi {
				continue
			}
			if !fn(&buf[i]) {
				return
			}
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// Salts of the schedule's draws (record.go has the per-key ones).
const (
	saltSecond = 0x3c6ef372fe94f82b
	saltCall   = 0xa54ff53a5f1d36f1
	saltDetail = 0x1f83d9abfb41bd6b
	// saltUnkeyed, saltBoth and saltQueued decide CallsConfig's
	// UnkeyedRowShare, BothPassesShare and QueuedChatShare.
	saltUnkeyed = 0x5be0cd19137e2179
	saltBoth    = 0x9b05688c2b3e6c1f
	saltQueued  = 0x428a2f98d728ae22
)

// secondHash is FNV-1a over seed, ccId, vdn and the second, mixed.
func secondHash(seed int64, ccID, vdn int, sec int64) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, v := range [4]uint64{uint64(seed), uint64(ccID), uint64(vdn), uint64(sec)} {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= prime
			v >>= 8
		}
	}
	return mix(h ^ saltSecond)
}

// head is what decides whether a listing includes a call: its start,
// direction and lifetime. The rest of the call is drawn from its own hash
// on demand (Schedule.call), so counting a busy window stays cheap.
type head struct {
	ccID, vdn int
	seq       int    // callId suffix = vdn*1000 + seq
	h         uint64 // the call's hash
	start     int64  // waitBegin, epoch ms
	seconds   int    // duration
	logDate   int64  // epoch ms
	inbound   bool
	answered  bool
	unkeyed   bool // CallsConfig.UnkeyedRowShare
	both      bool // CallsConfig.BothPassesShare
}

// listedIn reports whether querycalls lists the call in a pass of dir.
func (hd *head) listedIn(dir Direction) bool { return hd.both || dir.matches(hd.inbound) }

// heads appends the calls of (ccID, vdn) starting in second sec, sorted by
// start, then sequence (the callId order: one VDN's suffixes have one
// length).
func (s *Schedule) heads(ccID, vdn int, sec int64, buf []head) []head {
	h := secondHash(s.seed, ccID, vdn, sec)
	r := rng{s: h}
	n := min(poisson(&r, s.lambda), maxPerSecond)
	if n == 0 {
		return buf
	}
	base := int(r.next() % maxPerSecond)
	first := len(buf)
	minS, maxS := int64(s.cfg.MinDuration/time.Second), int64(s.cfg.MaxDuration/time.Second)
	for i := range n {
		hd := head{ccID: ccID, vdn: vdn, seq: (base + i) % maxPerSecond, h: mix(h ^ (uint64(i+1) * saltCall)),
			start: sec*1000 + r.intn(0, 999)}
		cr := rng{s: hd.h}
		hd.inbound = cr.chance(s.cfg.InboundShare)
		hd.answered = !cr.chance(s.cfg.AbandonShare)
		hd.seconds = int(cr.intn(minS, maxS))
		hd.logDate = hd.start + int64(hd.seconds)*1000 + cr.intn(0, s.cfg.SettleDelay.Milliseconds())
		// Off the call's draws: the schedule stays the same whatever the share.
		hd.unkeyed = s.cfg.UnkeyedRowShare > 0 && unit(mix(hd.h^saltUnkeyed)) < s.cfg.UnkeyedRowShare
		hd.both = s.cfg.BothPassesShare > 0 && unit(mix(hd.h^saltBoth)) < s.cfg.BothPassesShare
		buf = append(buf, hd)
	}
	slices.SortFunc(buf[first:], func(a, b head) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.seq, b.seq)) })
	return buf
}

// poisson draws from Poisson(lambda) by Knuth's method, in chunks small
// enough that exp(-chunk) stays far from underflow.
func poisson(r *rng, lambda float64) int {
	n := 0
	for lambda > 0 {
		l := min(lambda, 30)
		lambda -= l
		limit, p := math.Exp(-l), 1.0
		for {
			p *= r.float()
			if p <= limit {
				break
			}
			n++
		}
	}
	return n
}

// weighted is a small table of values with integer weights.
type weighted[T any] struct {
	vals    []T
	weights []int
}

func (w weighted[T]) pick(r *rng) T { return w.vals[pickWeighted(r.next(), w.weights)] }

// notConnected is how an outbound call fails: the leave reason, the release
// cause and the displayed result code go together.
type notConnected struct {
	leave, release int
	resultCode     string
}

// Code mixes of scheduled calls. Codes come from codes.md and
// cms-discovery.md section 4; 1101 (release cause Table 2, unpublished)
// exercises a client's "unknown" label.
var (
	inboundCallTypes  = weighted[int]{[]int{0, 1, 5}, []int{90, 5, 5}}
	outboundCallTypes = weighted[int]{[]int{7, 43, 41, 44, 8}, []int{50, 25, 10, 10, 5}}
	subMediaTypes     = weighted[int]{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []int{30, 30, 5, 10, 10, 3, 3, 3, 3, 3}}
	answeredLeave     = weighted[int]{[]int{88, 16, 17}, []int{60, 30, 10}}
	answeredOutLeave  = weighted[int]{[]int{88, 16}, []int{55, 45}}
	answeredRelease   = weighted[int]{[]int{0, 3, 63, 1101}, []int{96, 2, 1, 1}}
	ivrAbandonRelease = weighted[int]{[]int{49, 256}, []int{80, 20}}
	queueAbandonRel   = weighted[int]{[]int{80, 49}, []int{60, 40}}
	notConnectedWays  = weighted[notConnected]{[]notConnected{
		{26, 8, "1"},  // user did not answer / callee did not answer
		{20, 47, "2"}, // called busy / callee busy
		{27, 9, "3"},  // called rejected / callee rejected
		{24, 4, "4"},  // number does not exist
		{22, 48, "5"}, // mobile switched off / phone switched off
	}, []int{50, 25, 10, 10, 5}}
	outboundResults = weighted[string]{[]string{"0900", "0000"}, []int{70, 30}}
	busiResults     = weighted[string]{[]string{"10", "11", "12", "20"}, []int{40, 30, 20, 10}}
	busiSubStatuses = weighted[string]{[]string{"1", "2", "3"}, []int{50, 30, 20}}
)

// Shares inside a call's draw.
const (
	pChat          = 0.05 // inbound social chat (mediaType 53)
	pAnonymous     = 0.05 // inbound anonyCall 1
	pAbandonInIVR  = 0.4  // of abandoned inbound calls, the rest abandon in the queue
	failedOutbound = "0101"
)

// call draws the rest of the call of hd; the order of draws is part of the
// schedule's stability (schedule.golden pins it).
func (s *Schedule) call(hd *head) Call {
	r := rng{s: mix(hd.h ^ saltDetail)}
	sec := floorDiv(hd.start, 1000)
	c := Call{CCID: hd.ccID, VDN: hd.vdn, Inbound: hd.inbound, Unkeyed: hd.unkeyed, BothPasses: hd.both,
		CallID: strconv.FormatInt(sec, 10) + "-" + strconv.Itoa(hd.vdn*maxPerSecond+hd.seq)}
	answered, total := hd.answered, hd.seconds
	c.AgentID = int(r.intn(101, 160))
	c.SkillID = hd.vdn*10 + int(r.intn(1, 4))
	c.IVRDevice = int(r.intn(3001, 3020))
	customer := phoneNumber(&r)
	access := accessNumber(hd.vdn)
	if c.Inbound {
		c.CallerNo, c.CalleeNo = customer, access
		c.CallType = inboundCallTypes.pick(&r)
		c.MediaType = 5
		if r.chance(pChat) {
			c.MediaType, c.SubMediaType = 53, subMediaTypes.pick(&r)
		}
		if r.chance(pAnonymous) {
			c.AnonyCall = 1
		}
		ivr := int(r.intn(2, int64(max(2, total/4))))
		switch {
		case answered:
			c.Outcome = CallAnswered
			c.IVRSeconds = ivr
			c.QueueSeconds = int(r.intn(1, int64(max(1, total/4)))) // every answered call passes the queue
			c.RingSeconds = int(r.intn(1, int64(min(8, total-ivr-c.QueueSeconds-1))))
			c.TalkSeconds = total - ivr - c.QueueSeconds - c.RingSeconds
			c.LeaveReason = answeredLeave.pick(&r)
			c.ReleaseCause = answeredRelease.pick(&r)
		case r.chance(pAbandonInIVR):
			c.Outcome = CallAbandonedIVR
			c.IVRSeconds = total
			c.AgentID, c.SkillID = 0, 0
			c.LeaveReason = 15
			c.ReleaseCause = ivrAbandonRelease.pick(&r)
		default:
			c.Outcome = CallAbandonedQueue
			c.IVRSeconds, c.QueueSeconds = ivr, total-ivr
			c.AgentID = 0
			c.LeaveReason = 89
			c.ReleaseCause = queueAbandonRel.pick(&r)
		}
	} else {
		c.CallerNo, c.CalleeNo = access, customer
		c.CallType = outboundCallTypes.pick(&r)
		c.MediaType = 5
		if answered {
			c.Outcome = CallAnswered
			c.RingSeconds = int(r.intn(2, int64(min(20, total-1))))
			c.TalkSeconds = total - c.RingSeconds
			c.LeaveReason = answeredOutLeave.pick(&r)
			c.ReleaseCause = answeredRelease.pick(&r)
			c.Result, c.ResultCode = outboundResults.pick(&r), "0"
			c.BusiResult, c.BusiSubStatus = busiResults.pick(&r), busiSubStatuses.pick(&r)
		} else {
			c.Outcome = CallNotConnected
			c.RingSeconds = total
			nc := notConnectedWays.pick(&r)
			c.LeaveReason, c.ReleaseCause = nc.leave, nc.release
			c.Result, c.ResultCode = failedOutbound, nc.resultCode
		}
	}
	c.WaitBegin = time.UnixMilli(hd.start).UTC()
	if c.Outcome == CallAnswered {
		c.AckBegin = c.WaitBegin.Add(time.Duration(c.IVRSeconds+c.QueueSeconds+c.RingSeconds) * time.Second)
		c.CallBegin = c.AckBegin
	}
	c.CallEnd = c.WaitBegin.Add(time.Duration(total) * time.Second)
	c.LogDate = time.UnixMilli(hd.logDate).UTC()
	// Off the call's draws: the schedule stays the same whatever the share.
	if c.MediaType == 53 && s.cfg.QueuedChatShare > 0 && unit(mix(hd.h^saltQueued)) < s.cfg.QueuedChatShare {
		c.QueuedFor = s.cfg.QueuedChatWait
	}
	return c
}

// accessNumber is the VDN's access code, the called number of its inbound
// calls and the calling number of its outbound ones.
func accessNumber(vdn int) string {
	d := strconv.Itoa(vdn) // 1..5000: at most four digits
	return "4008" + "0000"[len(d):] + d
}
