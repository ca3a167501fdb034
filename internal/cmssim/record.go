package cmssim

import (
	"encoding/json"
	"strconv"

	"github.com/cmsetl/cms-etl/extract"
)

// Envelope variants of a response (cms-api.md section 1). Each call key gets
// one, chosen by hash.
const (
	// EnvelopeBoth: resultCode "0100000" + resultDesc object, and the legacy
	// result "0" + resultDatas object.
	EnvelopeBoth = "both"
	// EnvelopeNew: resultCode + resultDesc only.
	EnvelopeNew = "new"
	// EnvelopeLegacy: result + resultDatas only (8.13 and earlier).
	EnvelopeLegacy = "legacy"
	// EnvelopeBothTextDesc: both pairs, but resultDesc is the text "success"
	// and the object travels only in resultDatas.
	EnvelopeBothTextDesc = "both_text_desc"
)

// Quirks a generated record can carry (Response.Quirks).
const (
	QuirkNullField        = "null_field"         // some field is JSON null
	QuirkNumberAsString   = "number_as_string"   // a numeric field sent as "123"
	QuirkExtraField       = "extra_field"        // an undocumented field
	QuirkCallSkillString  = "call_skill_string"  // callSkill as a name, e.g. "defaultAudioSkill"
	QuirkCallSkillNumber  = "call_skill_number"  // callSkill as a number
	QuirkOrgiCalledEmpty  = "orgi_called_empty"  // orgiCalledNum ""
	QuirkOrgiCalledNumber = "orgi_called_number" // orgiCalledNum as a JSON number
	QuirkMediaBillNumber  = "media_bill_number"  // mediaBillType as the number 0
	QuirkKeyIDEmpty       = "key_id_empty"       // keyId ""
	QuirkUnknownCode      = "unknown_code"       // a code missing from codes.md
)

// Response is the simulated answer of a call key that has data.
type Response struct {
	// Envelope is the envelope variant (Envelope* constants).
	Envelope string
	// Body is the HTTP 200 body exactly as served.
	Body []byte
	// Fields are the values a lenient decoder must find, by JSON field name:
	// int64 for numeric fields (even when sent as a string), string for text
	// fields (numbers as written). Fields sent as null or "" are absent;
	// undocumented extra fields are not listed.
	Fields map[string]any
	// Quirks lists the Quirk* constants present in Body.
	Quirks []string
}

// ResponseFor returns the data response the simulator serves for key under
// seed (Config.Seed), regardless of the no-data and failure shares.
func ResponseFor(seed int64, key extract.Key) Response {
	h := keyHash(seed, key)
	g := gen{fields: map[string]any{}, quirks: map[string]bool{}}
	env := envelopeFor(h)
	g.b = appendDataEnvelope(nil, env, h, key, &g)
	resp := Response{Envelope: env, Body: g.b, Fields: g.fields}
	for _, q := range allQuirks {
		if g.quirks[q] {
			resp.Quirks = append(resp.Quirks, q)
		}
	}
	return resp
}

var allQuirks = []string{QuirkNullField, QuirkNumberAsString, QuirkExtraField, QuirkCallSkillString,
	QuirkCallSkillNumber, QuirkOrgiCalledEmpty, QuirkOrgiCalledNumber, QuirkMediaBillNumber,
	QuirkKeyIDEmpty, QuirkUnknownCode}

// Plan is what the simulator does with a call key under a configuration.
type Plan struct {
	// Outcome is the final answer once any faults are used up: OutcomeOK,
	// OutcomeNoData or OutcomePermanent.
	Outcome string
	// Code is the business code of a permanent failure.
	Code string
	// Fault is the transient fault kind served on the first
	// Config.TransientAttempts attempts, "" for none.
	Fault string
	// NoDataForm is how a no-data answer is sent: "empty" ({}), "null" or
	// "missing".
	NoDataForm string
}

// PlanFor returns the plan for key under cfg (defaults applied).
func PlanFor(cfg Config, key extract.Key) Plan {
	return planFor(cfg.withDefaults(), keyHash(cfg.Seed, key))
}

// Salts separate the independent decisions drawn from one key hash.
const (
	saltOutcome  = 0x9e3779b97f4a7c15
	saltFault    = 0xbf58476d1ce4e5b9
	saltCode     = 0x94d049bb133111eb
	saltEnvelope = 0x2545f4914f6cdd1d
	saltNoData   = 0x5851f42d4c957f2d
	saltStatus   = 0x14057b7ef767814f
	saltRecord   = 0x27bb2ee687b0b0fd
)

func planFor(cfg Config, h uint64) Plan {
	u := unit(mix(h ^ saltOutcome))
	switch {
	case u < cfg.PermanentShare:
		return Plan{Outcome: OutcomePermanent, Code: permanentCodes[pickWeighted(mix(h^saltCode), permanentWeights)].code}
	case u < cfg.PermanentShare+cfg.TransientShare:
		kinds := cfg.TransientKinds
		return Plan{Outcome: OutcomeOK, Fault: kinds[mix(h^saltFault)%uint64(len(kinds))]}
	case u < cfg.PermanentShare+cfg.TransientShare+cfg.NoDataShare:
		return Plan{Outcome: OutcomeNoData, NoDataForm: noDataForms[mix(h^saltNoData)%uint64(len(noDataForms))]}
	}
	return Plan{Outcome: OutcomeOK}
}

var noDataForms = []string{"empty", "null", "missing"}

type codeText struct{ code, text string }

// permanentCode returns the text of a permanent failure code of a Plan.
func permanentCode(code string) codeText {
	for _, c := range permanentCodes {
		if c.code == code {
			return c
		}
	}
	return permanentCodes[0]
}

var (
	permanentCodes = []codeText{
		{"0101002", "The queried number does not exist on the UAP."},
		{"0100002", "Invalid parameter: the call does not exist."},
		{"0101003", "Insufficient permission."},
		{"0100003", "The interface requires CTI V300R008, but V300R006 is deployed."},
	}
	permanentWeights = []int{60, 25, 10, 5}
	genericFailure   = codeText{"0100001", "Failed to invoke the interface."}
	unknownError     = codeText{"0100999", "Unknown error."}
)

// keyHash is FNV-1a over seed, ccId, vdn and callId, finished with a mixer;
// stable across processes and Go versions.
func keyHash(seed int64, k extract.Key) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, v := range [3]uint64{uint64(seed), uint64(k.CCID), uint64(k.VDN)} {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= prime
			v >>= 8
		}
	}
	for i := 0; i < len(k.CallID); i++ {
		h ^= uint64(k.CallID[i])
		h *= prime
	}
	return mix(h)
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unit maps x to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// rng is splitmix64: allocation-free and deterministic.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

func (r *rng) float() float64 { return unit(r.next()) }

// intn returns a value in [lo, hi].
func (r *rng) intn(lo, hi int64) int64 { return lo + int64(r.next()%uint64(hi-lo+1)) }

func (r *rng) chance(p float64) bool { return r.float() < p }

func pickWeighted(x uint64, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := int(x % uint64(total))
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

func envelopeFor(h uint64) string {
	return envelopes[pickWeighted(mix(h^saltEnvelope), envelopeWeights)]
}

var (
	envelopes       = []string{EnvelopeBoth, EnvelopeNew, EnvelopeLegacy, EnvelopeBothTextDesc}
	envelopeWeights = []int{60, 20, 12, 8}
)

// Weighted code tables. The last entries of each are codes missing from
// codes.md, drawn rarely, so the job's "unknown" label path is exercised.
type codeTable struct {
	codes   []int64
	weights []int
	unknown int // index of the first unknown code
}

func (t codeTable) pick(r *rng) (int64, bool) {
	i := pickWeighted(r.next(), t.weights)
	return t.codes[i], i >= t.unknown
}

var (
	mediaTypes = codeTable{
		codes:   []int64{5, 19, 1, 51, 53, 2, 4, 6, 17, 52, 55, 23, 99},
		weights: []int{780, 50, 40, 40, 30, 10, 10, 10, 5, 5, 5, 8, 7},
		unknown: 11,
	}
	deviceTypes = codeTable{
		codes:   []int64{2, 1, 3, 5, 8, 7, 10, 11, 14, 15, 4, 99},
		weights: []int{550, 250, 100, 20, 20, 10, 10, 5, 5, 10, 10, 10},
		unknown: 10,
	}
	callFeatures = codeTable{
		codes:   []int64{0, 2, 1, 43, 44, 40, 41, 42, 45, 51, 3, 4, 7, 99},
		weights: []int{700, 50, 50, 50, 30, 20, 10, 10, 20, 20, 10, 10, 10, 10},
		unknown: 12,
	}
	enterReasons = codeTable{
		codes:   []int64{0, 28, 1, 2, 3, 17, 36, 47, 5, 13, 18, 88, 89, 21, 99},
		weights: []int{600, 150, 40, 40, 20, 30, 20, 20, 10, 10, 10, 15, 15, 10, 10},
		unknown: 13,
	}
	skillNames = []string{"defaultAudioSkill", "defaultVideoSkill", "defaultMediaSkill", "defaultWebChatSkill",
		"Sales_Queue", "VIP_Service", "Billing_Support", "Tech_Support_L1", "Complaints"}
	calledNums  = []string{"4008001234", "95555", "4006668888", "075528780808", "8001", "10086"}
	extraFields = []string{
		`"callType":1`,
		`"agentId":"1001"`,
		`"skillId":12`,
		`"extInfo":{"source":"NSLB","tags":["a","b"],"level":2}`,
		`"reserved":null`,
		`"mediaAbility":"1"`,
	}
)

// Quirk probabilities per field or record.
const (
	pNull        = 0.01 // a field is null
	pNumString   = 0.03 // a numeric field is sent as a string
	pExtra       = 0.05 // the record carries an undocumented field
	pSkillNumber = 0.10
	pSkillEmpty  = 0.04
	pOrgiNumber  = 0.05
	pOrgiString  = 0.10
	pBillString  = 0.08
	pKeyIDSet    = 0.10
)

// gen appends a record's JSON and, when fields is non-nil (ResponseFor),
// records the expected decoded values and the quirks used. The server's hot
// path leaves fields nil, so it builds no maps.
type gen struct {
	b      []byte
	r      rng
	fields map[string]any
	quirks map[string]bool
	n      int // fields written so far, for commas
	// live, when set, replaces the values that follow a scheduled call's
	// lifetime (lifetime.go). Every draw still happens, so the other fields
	// stay the same through the call's life.
	live *liveValues
}

func (g *gen) quirk(q string) {
	if g.quirks != nil {
		g.quirks[q] = true
	}
}

func (g *gen) name(n string) {
	if g.n > 0 {
		g.b = append(g.b, ',')
	}
	g.n++
	g.b = append(g.b, '"')
	g.b = append(g.b, n...)
	g.b = append(g.b, '"', ':')
}

// null writes the field as null with probability pNull.
func (g *gen) null(n string) bool {
	if !g.r.chance(pNull) {
		return false
	}
	g.name(n)
	g.b = append(g.b, "null"...)
	g.quirk(QuirkNullField)
	return true
}

// num writes a numeric field, sometimes as a string or null.
func (g *gen) num(n string, v int64) {
	if g.null(n) {
		return
	}
	if g.live != nil {
		v = g.live.num(n, v)
	}
	g.name(n)
	if g.r.chance(pNumString) {
		g.b = append(g.b, '"')
		g.b = strconv.AppendInt(g.b, v, 10)
		g.b = append(g.b, '"')
		g.quirk(QuirkNumberAsString)
	} else {
		g.b = strconv.AppendInt(g.b, v, 10)
	}
	if g.fields != nil {
		g.fields[n] = v
	}
}

// str writes a text field; "" is absent for the decoder. s must need no
// JSON escaping (all generated text is plain ASCII).
func (g *gen) str(n, s string) {
	if g.null(n) {
		return
	}
	if g.live != nil {
		s = g.live.str(n, s)
	}
	g.name(n)
	g.b = append(g.b, '"')
	g.b = append(g.b, s...)
	g.b = append(g.b, '"')
	if g.fields != nil && s != "" {
		g.fields[n] = s
	}
}

// rawNum writes a text field as a JSON number (the decoder keeps it as text).
func (g *gen) rawNum(n string, v int64) {
	if g.live != nil {
		v = g.live.num(n, v)
	}
	g.name(n)
	g.b = strconv.AppendInt(g.b, v, 10)
	if g.fields != nil {
		g.fields[n] = strconv.FormatInt(v, 10)
	}
}

func (g *gen) code(n string, t codeTable) {
	v, unknown := t.pick(&g.r)
	if unknown {
		g.quirk(QuirkUnknownCode)
	}
	g.num(n, v)
}

// appendRecord writes the 25-field result object for key.
func (g *gen) appendRecord(h uint64, key extract.Key) {
	g.r = rng{s: h ^ saltRecord}
	g.n = 0
	g.b = append(g.b, '{')

	g.num("time", callTime(key.CallID, h)+g.r.intn(0, 5000))
	g.num("dsn", g.r.intn(1, 65535))
	g.num("handle", g.r.intn(0, 12))
	g.num("server", g.r.intn(1, 8))
	if g.r.chance(pKeyIDSet) {
		g.str("keyId", key.CallID)
	} else {
		g.str("keyId", "")
		g.quirk(QuirkKeyIDEmpty)
	}
	media, mediaUnknown := mediaTypes.pick(&g.r)
	chat := media == 1 || (media >= 50 && media <= 55)
	if chat {
		g.str("callingNum", "webuser_"+strconv.FormatInt(g.r.intn(10000, 99999999), 10))
	} else {
		g.str("callingNum", phoneNumber(&g.r))
	}
	g.str("calledNum", calledNums[g.r.next()%uint64(len(calledNums))])
	g.num("mid", g.r.intn(1, 4))
	g.num("trunkNo", g.r.intn(0, 1023))
	if g.r.chance(0.8) {
		g.num("priority", 0)
	} else {
		g.num("priority", g.r.intn(1, 9))
	}
	devType, devUnknown := deviceTypes.pick(&g.r)
	if devUnknown {
		g.quirk(QuirkUnknownCode)
	}
	g.num("deviceType", devType)
	switch devType {
	case 2:
		g.num("deviceNo", g.r.intn(101, 9999)) // agent id
	default:
		g.num("deviceNo", g.r.intn(1, 2000)) // queue or virtual device id
	}
	switch x := g.r.float(); {
	case x < pSkillEmpty:
		g.str("callSkill", "")
	case x < pSkillEmpty+pSkillNumber:
		if !g.null("callSkill") {
			g.rawNum("callSkill", g.r.intn(1, 300))
			g.quirk(QuirkCallSkillNumber)
		}
	default:
		skill := skillNames[0]
		if chat {
			skill = "defaultWebChatSkill"
		} else if g.r.chance(0.5) {
			skill = skillNames[g.r.next()%uint64(len(skillNames))]
		}
		g.str("callSkill", skill)
		g.quirk(QuirkCallSkillString)
	}
	g.num("partyNum", g.r.intn(1, 3))
	g.code("callFeature", callFeatures)
	switch x := g.r.float(); {
	case x < pOrgiNumber:
		if !g.null("orgiCalledNum") {
			g.rawNum("orgiCalledNum", g.r.intn(4000000000, 4009999999))
			g.quirk(QuirkOrgiCalledNumber)
		}
	case x < pOrgiNumber+pOrgiString:
		g.str("orgiCalledNum", calledNums[g.r.next()%uint64(len(calledNums))])
	default:
		g.str("orgiCalledNum", "")
		g.quirk(QuirkOrgiCalledEmpty)
	}
	if mediaUnknown {
		g.quirk(QuirkUnknownCode)
	}
	g.num("mediaType", media)
	g.num("place", g.r.intn(0, 500))
	wait := g.r.intn(0, 30)
	if g.r.chance(0.2) {
		wait = g.r.intn(30, 600)
	}
	talk := g.r.intn(0, 1800)
	g.num("waitTime", wait)
	g.num("totalTalkingTimes", talk)
	g.num("logonTimes", wait+talk+g.r.intn(0, 30))
	g.num("serviceType", g.r.intn(1, 5))
	if g.r.chance(0.85) {
		g.num("callInCause", 65535)
	} else {
		g.num("callInCause", g.r.intn(0, 20))
	}
	g.code("enterReason", enterReasons)
	switch x := g.r.float(); {
	case x < pBillString:
		g.str("mediaBillType", "0")
	default:
		if !g.null("mediaBillType") {
			g.rawNum("mediaBillType", 0)
			g.quirk(QuirkMediaBillNumber)
		}
	}
	if g.r.chance(pExtra) {
		g.b = append(g.b, ',')
		g.b = append(g.b, extraFields[g.r.next()%uint64(len(extraFields))]...)
		g.quirk(QuirkExtraField)
	}
	g.b = append(g.b, '}')
}

// callTime derives the entry time (epoch ms) from the callId prefix: 13
// digits are milliseconds, 10 digits seconds. Other prefixes get a time in
// 2024 derived from the hash.
func callTime(callID string, h uint64) int64 {
	prefix := callID
	for i := 0; i < len(callID); i++ {
		if callID[i] == '-' {
			prefix = callID[:i]
			break
		}
	}
	v, err := strconv.ParseInt(prefix, 10, 64)
	switch {
	case err == nil && len(prefix) == 13:
		return v
	case err == nil && len(prefix) == 10:
		return v * 1000
	}
	const jan2024 = 1704067200000
	return jan2024 + int64(h%(366*24*3600*1000))
}

func phoneNumber(r *rng) string {
	var b [16]byte
	s := b[:0]
	switch r.next() % 4 {
	case 0:
		s = append(s, "0755"...)
		s = strconv.AppendInt(s, r.intn(20000000, 89999999), 10)
	default:
		s = append(s, '1', byte('3'+r.next()%7))
		s = strconv.AppendInt(s, r.intn(100000000, 999999999), 10)
	}
	return string(s)
}

// appendDataEnvelope writes the full success body for a call with data.
func appendDataEnvelope(b []byte, env string, h uint64, key extract.Key, g *gen) []byte {
	record := func() {
		g.b = b
		g.appendRecord(h, key)
		b = g.b
	}
	switch env {
	case EnvelopeNew:
		b = append(b, `{"resultCode":"0100000","resultDesc":`...)
		record()
	case EnvelopeLegacy:
		b = append(b, `{"result":"0","resultDatas":`...)
		record()
	case EnvelopeBothTextDesc:
		b = append(b, `{"resultCode":"0100000","resultDesc":"success","result":"0","resultDatas":`...)
		record()
	default:
		b = append(b, `{"resultCode":"0100000","resultDesc":`...)
		start := len(b)
		record()
		obj := b[start:]
		b = append(b, `,"result":"0","resultDatas":`...)
		b = append(b, obj...)
	}
	return append(b, '}')
}

// appendNoDataEnvelope writes a success body without a result object.
func appendNoDataEnvelope(b []byte, env, form string) []byte {
	var obj string
	switch form {
	case "empty":
		obj = "{}"
	case "null":
		obj = "null"
	}
	field := func(name string) {
		if obj != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = append(b, obj...)
		}
	}
	switch env {
	case EnvelopeNew:
		b = append(b, `{"resultCode":"0100000"`...)
		field("resultDesc")
	case EnvelopeLegacy:
		b = append(b, `{"result":"0"`...)
		field("resultDatas")
	case EnvelopeBothTextDesc:
		b = append(b, `{"resultCode":"0100000","resultDesc":"success","result":"0"`...)
		field("resultDatas")
	default:
		b = append(b, `{"resultCode":"0100000"`...)
		field("resultDesc")
		b = append(b, `,"result":"0"`...)
		field("resultDatas")
	}
	return append(b, '}')
}

// appendFailure writes a failure body: the code with a text resultDesc. A
// legacy server carries the code in result (the client reads resultCode,
// else result).
func appendFailure(b []byte, env string, ct codeText) []byte {
	switch env {
	case EnvelopeLegacy:
		b = append(b, `{"result":"`...)
		b = append(b, ct.code...)
		b = append(b, `","resultDesc":`...)
	default:
		b = append(b, `{"resultCode":"`...)
		b = append(b, ct.code...)
		b = append(b, `","resultDesc":`...)
	}
	b = appendJSONString(b, ct.text)
	if env == EnvelopeBoth || env == EnvelopeBothTextDesc {
		b = append(b, `,"result":"`...)
		b = append(b, ct.code...)
		b = append(b, '"')
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil { // cannot happen for a string
		return append(b, `""`...)
	}
	return append(b, q...)
}
