package cmssim

import (
	"errors"
	"fmt"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// Body shapes querycalldetailbyid accepts (CallsConfig.CDRBodyShape,
// cms-discovery.md section 2.2).
const (
	CDRBodyFlat    = "flat"    // {"ccId":1,"isCallin":"true","callId":"..."}
	CDRBodyWrapped = "wrapped" // {"queryParam":{...}} as in Huawei's sample
	CDRBodyBoth    = "both"    // either; the default
)

// VDN names one scheduled VDN of a call center.
type VDN struct {
	CCID int
	VDN  int
}

func (v VDN) String() string { return fmt.Sprintf("%d/%d", v.CCID, v.VDN) }

// CallsConfig turns on the call schedule (Config.Calls): a deterministic set
// of calls per VDN, each with a lifetime. querybasiccallinfo then answers
// only while a call is live, querycalls lists the calls that ended and were
// stored, and querycalldetailbyid serves their CDRs. Start from DefaultCalls:
// in a literal, a zero share means none.
type CallsConfig struct {
	// VDNs are the (ccId, vdn) pairs that have calls; other pairs have none.
	// Required.
	VDNs []VDN
	// CallsPerMinute is the mean number of calls starting per minute per
	// VDN, both directions together (Poisson arrivals per second).
	// Required, > 0 and at most MaxCallsPerMinute.
	CallsPerMinute float64
	// InboundShare is the share (0..1) of inbound calls; the rest are
	// outbound.
	InboundShare float64
	// AbandonShare is the share (0..1) of calls never answered: inbound
	// calls abandoned in the IVR or the queue, outbound calls the callee did
	// not answer (no answer, busy, rejected, ...).
	AbandonShare float64
	// MinDuration and MaxDuration bound a call's duration from start
	// (waitBegin) to end (callEnd), whole seconds, uniformly drawn. Defaults
	// 20s and 120s; MinDuration at least 5s.
	MinDuration, MaxDuration time.Duration
	// SettleDelay bounds the delay from a call's end to its storage
	// (logDate): each call draws a delay in [0, SettleDelay]. querycalls
	// and querycalldetailbyid see a call only from its logDate. Default 10s.
	SettleDelay time.Duration
	// Retention is how long after its start (waitBegin) a call stays
	// queryable by querycalls and querycalldetailbyid. 0 (the default)
	// applies the API's one-day rule by calendar day in UTC: a call is kept
	// while it started no earlier than yesterday 00:00 UTC.
	Retention time.Duration
	// TenantZone is the zone of the CDR's beginTime/endTime strings
	// ("yyyy-MM-dd HH:mm:ss"). Default UTC.
	TenantZone *time.Location
	// ShortPageShare is the share (0..1) of querycalls pages that return
	// fewer rows than asked. Only windows holding more than one page are
	// affected (paging is what fails), so a client that bisects until a
	// window fits one page always gets complete answers. Decided by a hash
	// of the request, so a repeated request gets the same page.
	ShortPageShare float64
	// CountDriftShare is the share (0..1) of querycalls pages, again only in
	// windows holding more than one page, whose count is reported 1..3 too
	// high, as if rows were being written between pages.
	CountDriftShare float64
	// UnkeyedRowShare is the share (0..1) of calls querycalls lists with
	// an empty callId, or none (half each): a row no client can key, to
	// prove a discovery keeps the rest of its slice. Decided per call, so
	// every listing of the call is the same.
	UnkeyedRowShare float64
	// BothPassesShare is the share (0..1) of calls querycalls lists in
	// both directions' passes (internal or consultation calls,
	// cms-discovery.md 6.2), the same row in each; querycalldetailbyid
	// answers them in either direction. Decided per call.
	BothPassesShare float64
	// QueuedChatShare is the share (0..1) of social-chat calls (mediaType
	// 53) that waited in a queue long before the time querycalls files
	// them under: their row's waitBegin is QueuedChatWait earlier than the
	// start the listing filters on (Call.QueuedFor), so a client filing
	// rows by waitBegin files them days before the window it listed.
	QueuedChatShare float64
	// QueuedChatWait is how much earlier; default 4 days.
	QueuedChatWait time.Duration
	// CDRBodyShape is the querycalldetailbyid body the server accepts:
	// CDRBodyFlat, CDRBodyWrapped or CDRBodyBoth (default). The other shape
	// gets 0100002.
	CDRBodyShape string
	// CDRAgentIDSpace sends the CDR's agentId under the key "agentId " with
	// a trailing space, as Huawei's sample does.
	CDRAgentIDSpace bool
	// Now is the simulator's clock for call lifetimes, storage, retention
	// and the querycalls window rule. Default time.Now. Tests pass a fake
	// clock to run a simulated day at once.
	Now func() time.Time
}

// MaxCallsPerMinute bounds CallsPerMinute: the per-second sequence of a
// callId holds 1000 calls per VDN.
const MaxCallsPerMinute = 6000

// Defaults of CallsConfig, declared once.
const (
	defaultMinDuration  = 20 * time.Second
	defaultMaxDuration  = 120 * time.Second
	defaultSettleDelay  = 10 * time.Second
	defaultQueuedWait   = 4 * 24 * time.Hour
	minCallDuration     = 5 * time.Second
	maxCallDuration     = 4 * time.Hour
	defaultInbound      = 0.7
	defaultAbandon      = 0.1
	defaultCallsPerMin  = 6
	defaultScheduleCCID = 1
	defaultScheduleVDN  = 1
)

// DefaultCalls returns a realistic schedule for VDN 1 of call center 1: 6
// calls a minute, 70% inbound, 10% abandoned, 20-120 s long.
func DefaultCalls() CallsConfig {
	return CallsConfig{
		VDNs:           []VDN{{CCID: defaultScheduleCCID, VDN: defaultScheduleVDN}},
		CallsPerMinute: defaultCallsPerMin,
		InboundShare:   defaultInbound,
		AbandonShare:   defaultAbandon,
		MinDuration:    defaultMinDuration,
		MaxDuration:    defaultMaxDuration,
		SettleDelay:    defaultSettleDelay,
		CDRBodyShape:   CDRBodyBoth,
	}
}

// validate returns one error per bad field, named as in Config
// ("Calls.CallsPerMinute").
func (c *CallsConfig) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cmssim config: Calls.%s: "+format, append([]any{field}, args...)...))
	}
	if len(c.VDNs) == 0 {
		bad("VDNs", "is empty")
	}
	seen := map[VDN]bool{}
	for _, v := range c.VDNs {
		if err := (extract.Key{CCID: v.CCID, VDN: v.VDN, CallID: "1-1"}).Validate(); err != nil {
			bad("VDNs", "%v: %v", v, err)
		}
		if seen[v] {
			bad("VDNs", "%v listed twice", v)
		}
		seen[v] = true
	}
	if !(c.CallsPerMinute > 0 && c.CallsPerMinute <= MaxCallsPerMinute) {
		bad("CallsPerMinute", "%v outside (0, %d]", c.CallsPerMinute, MaxCallsPerMinute)
	}
	for _, s := range []struct {
		name string
		v    float64
	}{{"InboundShare", c.InboundShare}, {"AbandonShare", c.AbandonShare},
		{"ShortPageShare", c.ShortPageShare}, {"CountDriftShare", c.CountDriftShare}, {"UnkeyedRowShare", c.UnkeyedRowShare},
		{"BothPassesShare", c.BothPassesShare}, {"QueuedChatShare", c.QueuedChatShare}} {
		if !(s.v >= 0 && s.v <= 1) {
			bad(s.name, "%v outside 0..1", s.v)
		}
	}
	if c.MinDuration != 0 && (c.MinDuration < minCallDuration || c.MinDuration > maxCallDuration) {
		bad("MinDuration", "%v outside %v..%v", c.MinDuration, minCallDuration, maxCallDuration)
	}
	if c.MaxDuration != 0 && (c.MaxDuration < minCallDuration || c.MaxDuration > maxCallDuration) {
		bad("MaxDuration", "%v outside %v..%v", c.MaxDuration, minCallDuration, maxCallDuration)
	}
	if lo, hi := c.minDuration(), c.maxDuration(); hi < lo {
		bad("MaxDuration", "%v is below MinDuration %v", hi, lo)
	}
	if c.SettleDelay < 0 {
		bad("SettleDelay", "%v is negative", c.SettleDelay)
	}
	if c.Retention < 0 {
		bad("Retention", "%v is negative", c.Retention)
	}
	if c.QueuedChatWait < 0 {
		bad("QueuedChatWait", "%v is negative", c.QueuedChatWait)
	}
	switch c.CDRBodyShape {
	case "", CDRBodyFlat, CDRBodyWrapped, CDRBodyBoth:
	default:
		bad("CDRBodyShape", "%q (want %s, %s or %s)", c.CDRBodyShape, CDRBodyFlat, CDRBodyWrapped, CDRBodyBoth)
	}
	return errs
}

func (c *CallsConfig) minDuration() time.Duration {
	if c.MinDuration == 0 {
		return defaultMinDuration
	}
	return c.MinDuration
}

func (c *CallsConfig) maxDuration() time.Duration {
	if c.MaxDuration == 0 {
		return max(defaultMaxDuration, c.minDuration())
	}
	return c.MaxDuration
}

// withDefaults fills the documented defaults.
func (c CallsConfig) withDefaults() CallsConfig {
	c.MinDuration, c.MaxDuration = c.minDuration(), c.maxDuration()
	if c.SettleDelay == 0 {
		c.SettleDelay = defaultSettleDelay
	}
	if c.QueuedChatWait == 0 {
		c.QueuedChatWait = defaultQueuedWait
	}
	if c.TenantZone == nil {
		c.TenantZone = time.UTC
	}
	if c.CDRBodyShape == "" {
		c.CDRBodyShape = CDRBodyBoth
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.VDNs = append([]VDN(nil), c.VDNs...)
	return c
}

// ValidateCalls checks c alone (NewSchedule does it too); errors name the
// field.
func ValidateCalls(c CallsConfig) error { return errors.Join(c.validate()...) }
