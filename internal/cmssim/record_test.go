package cmssim

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cmsetl/cms-etl/extract"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The 25 documented fields; text fields per cms.Record.
var (
	numericFields = []string{"time", "dsn", "handle", "server", "mid", "trunkNo", "priority", "deviceType",
		"deviceNo", "partyNum", "callFeature", "mediaType", "place", "waitTime", "totalTalkingTimes",
		"logonTimes", "serviceType", "callInCause", "enterReason"}
	textFields = []string{"keyId", "callingNum", "calledNum", "callSkill", "orgiCalledNum", "mediaBillType"}
)

// Known codes, copied from codes.md independently of the generator's tables.
var knownCodes = map[string][]int64{
	"mediaType":   {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 50, 51, 52, 53, 54, 55},
	"deviceType":  {1, 2, 3, 5, 7, 8, 10, 11, 14, 15},
	"callFeature": {0, 1, 2, 3, 4, 40, 41, 42, 43, 44, 45, 51},
	"enterReason": {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 88, 89},
}

func testKey(i int) extract.Key {
	switch i % 3 {
	case 0:
		return extract.Key{CCID: 1 + i%7, VDN: 1 + i%50, CallID: strconv.FormatInt(1659513159000+int64(i)*1733, 10) + "-" + strconv.Itoa(546750+i)}
	case 1:
		return extract.Key{CCID: 2, VDN: 100, CallID: strconv.FormatInt(1453723531+int64(i), 10) + "-" + strconv.Itoa(i)}
	}
	return extract.Key{CCID: 65535, VDN: 5000, CallID: "77-" + strconv.Itoa(i)}
}

// envelopeOf classifies a body by which top-level members it has.
func envelopeOf(t *testing.T, body []byte) (env string, obj map[string]json.RawMessage) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	_, hasCode := top["resultCode"]
	_, hasLegacy := top["result"]
	desc := top["resultDesc"]
	switch {
	case hasCode && hasLegacy && len(desc) > 0 && desc[0] == '"':
		env = EnvelopeBothTextDesc
	case hasCode && hasLegacy:
		env = EnvelopeBoth
	case hasCode:
		env = EnvelopeNew
	case hasLegacy:
		env = EnvelopeLegacy
	default:
		t.Fatalf("no code in body %s", body)
	}
	raw := desc
	if len(raw) == 0 || raw[0] != '{' {
		raw = top["resultDatas"]
	}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("result object: %v", err)
		}
	}
	if env == EnvelopeBoth && !bytes.Equal(top["resultDesc"], top["resultDatas"]) {
		t.Errorf("both pairs carry different objects:\n%s", body)
	}
	return env, obj
}

// TestResponseVariety checks over many keys that every envelope variant and
// every documented quirk occurs, that each record is plausible, and that the
// advertised Fields match an independent lenient decoding of the body.
func TestResponseVariety(t *testing.T) {
	t.Parallel()
	envs := map[string]int{}
	quirks := map[string]int{}
	codes := map[string]map[int64]int{}
	const n = 2000
	for i := range n {
		key := testKey(i)
		resp := ResponseFor(7, key)
		env, obj := envelopeOf(t, resp.Body)
		if env != resp.Envelope {
			t.Fatalf("key %v: body has envelope %s, Response says %s", key, env, resp.Envelope)
		}
		envs[env]++
		if obj == nil {
			t.Fatalf("key %v: no result object in %s", key, resp.Body)
		}
		got := map[string]any{}
		for _, f := range append(slices.Clone(numericFields), textFields...) {
			raw, ok := obj[f]
			if !ok {
				t.Fatalf("key %v: field %s missing from %s", key, f, resp.Body)
			}
			var v any
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			isNumeric := slices.Contains(numericFields, f)
			switch x := v.(type) {
			case nil:
				quirks[QuirkNullField]++
			case string:
				if x == "" {
					if f == "keyId" {
						quirks[QuirkKeyIDEmpty]++
					}
					if f == "orgiCalledNum" {
						quirks[QuirkOrgiCalledEmpty]++
					}
					continue
				}
				if isNumeric {
					quirks[QuirkNumberAsString]++
					n, err := strconv.ParseInt(x, 10, 64)
					if err != nil {
						t.Fatalf("key %v: %s = %q is not a number", key, f, x)
					}
					got[f] = n
				} else {
					got[f] = x
				}
				if f == "callSkill" {
					quirks[QuirkCallSkillString]++
				}
			case json.Number:
				n, err := x.Int64()
				if err != nil {
					t.Fatalf("key %v: %s = %s is not an integer", key, f, x)
				}
				if isNumeric {
					got[f] = n
				} else {
					got[f] = x.String()
				}
				switch f {
				case "callSkill":
					quirks[QuirkCallSkillNumber]++
				case "orgiCalledNum":
					quirks[QuirkOrgiCalledNumber]++
				case "mediaBillType":
					if n == 0 {
						quirks[QuirkMediaBillNumber]++
					}
				}
			default:
				t.Fatalf("key %v: %s has type %T", key, f, v)
			}
		}
		if len(obj) > 25 {
			quirks[QuirkExtraField]++
		}
		for f, known := range knownCodes {
			if c, ok := got[f].(int64); ok {
				if codes[f] == nil {
					codes[f] = map[int64]int{}
				}
				codes[f][c]++
				if !slices.Contains(known, c) {
					quirks[QuirkUnknownCode]++
				}
			}
		}
		checkPlausible(t, key, got)
		if !reflect.DeepEqual(got, resp.Fields) {
			t.Fatalf("key %v: Fields\n %v\ndecoded\n %v", key, resp.Fields, got)
		}
	}
	for _, e := range envelopes {
		if envs[e] == 0 {
			t.Errorf("envelope %s never occurred: %v", e, envs)
		}
	}
	for _, q := range allQuirks {
		if quirks[q] == 0 {
			t.Errorf("quirk %s never occurred: %v", q, quirks)
		}
	}
	if share := float64(codes["mediaType"][5]) / n; share < 0.6 || share > 0.95 {
		t.Errorf("voice share %.2f, want mostly voice", share)
	}
	for _, c := range []int64{1, 19, 51, 53} {
		if codes["mediaType"][c] == 0 {
			t.Errorf("mediaType %d never occurred", c)
		}
	}
	t.Logf("envelopes %v quirks %v", envs, quirks)
}

func checkPlausible(t *testing.T, key extract.Key, f map[string]any) {
	t.Helper()
	prefix, _, _ := strings.Cut(key.CallID, "-")
	start, _ := strconv.ParseInt(prefix, 10, 64)
	if len(prefix) == 10 {
		start *= 1000
	}
	if tm, ok := f["time"].(int64); ok && (len(prefix) == 10 || len(prefix) == 13) {
		if tm < start || tm > start+10_000 {
			t.Errorf("key %v: time %d not a few seconds after %d", key, tm, start)
		}
	}
	w, okW := f["waitTime"].(int64)
	talk, okT := f["totalTalkingTimes"].(int64)
	logon, okL := f["logonTimes"].(int64)
	if okW && okT && okL && (w < 0 || talk < 0 || logon < w+talk || logon > w+talk+3600) {
		t.Errorf("key %v: durations wait %d talk %d logon %d implausible", key, w, talk, logon)
	}
}

func TestResponseDeterministic(t *testing.T) {
	t.Parallel()
	k := extract.Key{CCID: 1, VDN: 1, CallID: "1659513159000-546750"}
	a, b := ResponseFor(1, k), ResponseFor(1, k)
	if !bytes.Equal(a.Body, b.Body) {
		t.Fatal("same key and seed gave different bodies")
	}
	if bytes.Equal(a.Body, ResponseFor(2, k).Body) {
		t.Error("a different seed gave the same body")
	}
	k2 := k
	k2.VDN = 2
	if bytes.Equal(a.Body, ResponseFor(1, k2).Body) {
		t.Error("a different key gave the same body")
	}
}

// TestResponseGolden pins the generated data: tests elsewhere and demo data
// depend on it staying stable across releases. Run with -update after a
// deliberate change.
func TestResponseGolden(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	for i := range 6 {
		k := testKey(i)
		fmt.Fprintf(&b, "%s %s\n", k, ResponseFor(42, k).Body)
	}
	path := filepath.Join("testdata", "responses.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("generated responses differ from %s (run with -update if intended):\n%s", path, b.Bytes())
	}
}

// TestPlanShares checks the selection by hash roughly honours the shares and
// the no-data forms and permanent codes all occur.
func TestPlanShares(t *testing.T) {
	t.Parallel()
	cfg := Config{NoDataShare: 0.2, PermanentShare: 0.1, TransientShare: 0.3, TransientAttempts: 2}
	counts := map[string]int{}
	forms := map[string]int{}
	permCodes := map[string]int{}
	faults := map[string]int{}
	const n = 5000
	for i := range n {
		p := PlanFor(cfg, testKey(i))
		if p != PlanFor(cfg, testKey(i)) {
			t.Fatal("plan not deterministic")
		}
		switch {
		case p.Fault != "":
			counts["transient"]++
			faults[p.Fault]++
		default:
			counts[p.Outcome]++
		}
		forms[p.NoDataForm]++
		permCodes[p.Code]++
	}
	for name, want := range map[string]float64{"transient": 0.3, OutcomeNoData: 0.2, OutcomePermanent: 0.1, OutcomeOK: 0.4} {
		if got := float64(counts[name]) / n; got < want-0.03 || got > want+0.03 {
			t.Errorf("share of %s = %.3f, want about %.2f", name, got, want)
		}
	}
	for _, f := range noDataForms {
		if forms[f] == 0 {
			t.Errorf("no-data form %s never chosen", f)
		}
	}
	for _, c := range permanentCodes {
		if permCodes[c.code] == 0 {
			t.Errorf("permanent code %s never chosen", c.code)
		}
	}
	for _, k := range AllFaultKinds {
		if faults[k] == 0 {
			t.Errorf("fault %s never chosen", k)
		}
	}
}

func TestNoDataAndFailureBodies(t *testing.T) {
	t.Parallel()
	for _, env := range envelopes {
		for _, form := range noDataForms {
			body := appendNoDataEnvelope(nil, env, form)
			gotEnv, obj := envelopeOf(t, body)
			if gotEnv != env || len(obj) != 0 {
				t.Errorf("no-data %s/%s: envelope %s object %v: %s", env, form, gotEnv, obj, body)
			}
		}
		body := appendFailure(nil, env, genericFailure)
		var top map[string]any
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("failure %s: %v", env, err)
		}
		code, ok := top["resultCode"].(string)
		if !ok {
			code, _ = top["result"].(string)
		}
		if desc, _ := top["resultDesc"].(string); code != "0100001" || desc == "" {
			t.Errorf("failure %s: code %q desc %q: %s", env, code, desc, body)
		}
	}
}

func BenchmarkResponseBody(b *testing.B) {
	k := extract.Key{CCID: 1, VDN: 1, CallID: "1659513159000-546750"}
	h := keyHash(0, k)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var g gen
		buf = appendDataEnvelope(buf[:0], envelopeFor(h), h, k, &g)
	}
}
