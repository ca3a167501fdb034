package cms

import (
	"bytes"
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

// exampleObject is the result object of querybasiccallinfo as documented
// (cms-api.md section 1): the documented example values (time, keyId "",
// callSkill "defaultAudioSkill", orgiCalledNum "", totalTalkingTimes 275,
// logonTimes 284, serviceType 2, callInCause 65535, mediaBillType 0), the
// other fields filled with plausible values of their documented types.
const exampleObject = `{
  "time": 1606115215000,
  "dsn": 71,
  "handle": 4,
  "server": 1,
  "keyId": "",
  "callingNum": "13800000000",
  "calledNum": "70001",
  "mid": 1,
  "trunkNo": 65535,
  "priority": 0,
  "deviceType": 2,
  "deviceNo": 157,
  "callSkill": "defaultAudioSkill",
  "partyNum": 2,
  "callFeature": 0,
  "orgiCalledNum": "",
  "mediaType": 5,
  "place": 0,
  "waitTime": 9,
  "totalTalkingTimes": 275,
  "logonTimes": 284,
  "serviceType": 2,
  "callInCause": 65535,
  "enterReason": 0,
  "mediaBillType": 0
}`

func i64(v int64) *int64     { return &v }
func str(v string) *string   { return &v }
func eqInt(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func eqStr(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func showInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func showStr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// compareRecords reports every field that differs (Problems excluded).
func compareRecords(t *testing.T, got, want *Record) {
	t.Helper()
	for i := range numFields {
		if textField(i) {
			g, w := *got.textPtr(i), *want.textPtr(i)
			if !eqStr(g, w) {
				t.Errorf("%s = %#v, want %#v", fieldNames[i], showStr(g), showStr(w))
			}
			continue
		}
		g, w := *got.intPtr(i), *want.intPtr(i)
		if !eqInt(g, w) {
			t.Errorf("%s = %#v, want %#v", fieldNames[i], showInt(g), showInt(w))
		}
	}
}

func TestDecodeRecordExample(t *testing.T) {
	t.Parallel()
	got, err := DecodeRecord([]byte(exampleObject))
	if err != nil {
		t.Fatal(err)
	}
	want := &Record{
		Time: i64(1606115215000), DSN: i64(71), Handle: i64(4), Server: i64(1),
		CallingNum: str("13800000000"), CalledNum: str("70001"), MID: i64(1), TrunkNo: i64(65535),
		Priority: i64(0), DeviceType: i64(2), DeviceNo: i64(157), CallSkill: str("defaultAudioSkill"),
		PartyNum: i64(2), CallFeature: i64(0), MediaType: i64(5), Place: i64(0), WaitTime: i64(9),
		TotalTalkingTimes: i64(275), LogonTimes: i64(284), ServiceType: i64(2), CallInCause: i64(65535),
		EnterReason: i64(0), MediaBillType: str("0"),
	}
	compareRecords(t, got, want)
	if len(got.Problems) != 0 {
		t.Errorf("Problems = %q, want none", got.Problems)
	}
}

func TestDecodeRecordNumericField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string // JSON text of deviceType's value; "" = field missing
		want    *int64
		problem string
	}{
		{"missing", "", nil, ""},
		{"null", `null`, nil, ""},
		{"empty string", `""`, nil, ""},
		{"blank string", `"   "`, nil, ""},
		{"number", `12`, i64(12), ""},
		{"negative", `-3`, i64(-3), ""},
		{"negative zero", `-0`, i64(0), ""},
		{"string", `"12"`, i64(12), ""},
		{"padded string", `" 12 "`, i64(12), ""},
		{"tab padded", "\"\\t12\\n\"", i64(12), ""},
		{"plus sign string", `"+7"`, i64(7), ""},
		{"leading zeros string", `"007"`, i64(7), ""},
		{"integral fraction", `275.0`, i64(275), ""},
		{"integral fraction string", `"275.0"`, i64(275), ""},
		{"exponent", `2.75e2`, i64(275), ""},
		{"exponent string", `"2.75E+2"`, i64(275), ""},
		{"exponent with zeros", `1.500e3`, i64(1500), ""},
		{"negative exponent", `27500e-2`, i64(275), ""},
		{"zero huge exponent", `0e999999999999`, i64(0), ""},
		{"max int64", `9223372036854775807`, i64(9223372036854775807), ""},
		{"min int64", `-9223372036854775808`, i64(-9223372036854775808), ""},
		{"min int64 exponent", `-9.223372036854775808e18`, i64(-9223372036854775808), ""},
		{"fraction", `2.5`, nil, `deviceType: 2.5 is not an integer`},
		{"small exponent", `1e-1`, nil, `deviceType: 1e-1 is not an integer`},
		{"fraction string", `"2.5"`, nil, `deviceType: "2.5" is not an integer`},
		{"text", `"abc"`, nil, `deviceType: "abc" is not an integer`},
		{"hex", `"0x10"`, nil, `deviceType: "0x10" is not an integer`},
		{"inner space", `"1 2"`, nil, `deviceType: "1 2" is not an integer`},
		{"sign only", `"-"`, nil, `deviceType: "-" is not an integer`},
		{"dot only", `"."`, nil, `deviceType: "." is not an integer`},
		{"exponent only", `"e5"`, nil, `deviceType: "e5" is not an integer`},
		{"dangling exponent", `"5e"`, nil, `deviceType: "5e" is not an integer`},
		{"NaN", `"NaN"`, nil, `deviceType: "NaN" is not an integer`},
		{"too big", `9223372036854775808`, nil, `deviceType: 9223372036854775808 is out of int64 range`},
		{"too small", `-9223372036854775809`, nil, `deviceType: -9223372036854775809 is out of int64 range`},
		{"too big exponent", `1e19`, nil, `deviceType: 1e19 is out of int64 range`},
		{"huge exponent", `"1e999999999999999999999"`, nil, `deviceType: "1e999999999999999999999" is out of int64 range`},
		{"true", `true`, nil, `deviceType: true is not an integer`},
		{"false", `false`, nil, `deviceType: false is not an integer`},
		{"object", `{"a":1}`, nil, `deviceType: an object is not an integer`},
		{"array", `[1]`, nil, `deviceType: an array is not an integer`},
		{"escaped digits", `"\u0031\u0032"`, i64(12), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := `{"dsn":1}`
			if tt.value != "" {
				raw = `{"dsn":1,"deviceType":` + tt.value + `,"mid":2}`
			}
			got, err := DecodeRecord([]byte(raw))
			if err != nil {
				t.Fatalf("DecodeRecord(%s): %v", raw, err)
			}
			if !eqInt(got.DeviceType, tt.want) {
				t.Errorf("deviceType = %#v, want %#v", showInt(got.DeviceType), showInt(tt.want))
			}
			checkProblem(t, got.Problems, tt.problem)
			if tt.value != "" && (!eqInt(got.DSN, i64(1)) || !eqInt(got.MID, i64(2))) {
				t.Errorf("neighbours dsn=%v mid=%v, want 1 and 2", showInt(got.DSN), showInt(got.MID))
			}
		})
	}
}

// checkProblem wants exactly the one problem named, or none for "".
func checkProblem(t *testing.T, got []string, want string) {
	t.Helper()
	var wantProblems []string
	if want != "" {
		wantProblems = []string{want}
	}
	if strings.Join(got, "|") != strings.Join(wantProblems, "|") {
		t.Errorf("Problems = %q, want %q", got, wantProblems)
	}
}

func TestDecodeRecordTextField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string // JSON text of callingNum's value; "" = field missing
		want    *string
		problem string
	}{
		{"missing", "", nil, ""},
		{"null", `null`, nil, ""},
		{"empty", `""`, nil, ""},
		{"blank", `"  "`, nil, ""},
		{"string", `"13800000000"`, str("13800000000"), ""},
		{"trimmed", `" +86 138 "`, str("+86 138"), ""},
		{"zero", `0`, str("0"), ""},
		{"big number kept as written", `13800000000`, str("13800000000"), ""},
		{"very big number kept as written", `123456789012345678901234567890`, str("123456789012345678901234567890"), ""},
		{"fraction kept as written", `1.50`, str("1.50"), ""},
		{"exponent kept as written", `1e3`, str("1e3"), ""},
		{"true", `true`, str("true"), ""},
		{"false", `false`, str("false"), ""},
		{"escapes", `"a\"b\\c\u00e9"`, str(`a"b\cé`), ""},
		{"escaped blank", `"\u0020x\t"`, str("x"), ""},
		{"unicode", `"技能"`, str("技能"), ""},
		{"invalid utf8 replaced", "\"a\xffb\"", str("a\uFFFDb"), ""},
		{"object", `{"x":[1,2]}`, nil, `callingNum: an object is not text`},
		{"array", `[]`, nil, `callingNum: an array is not text`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := `{}`
			if tt.value != "" {
				raw = `{"callingNum":` + tt.value + `}`
			}
			got, err := DecodeRecord([]byte(raw))
			if err != nil {
				t.Fatalf("DecodeRecord(%s): %v", raw, err)
			}
			if !eqStr(got.CallingNum, tt.want) {
				t.Errorf("callingNum = %#v, want %#v", showStr(got.CallingNum), showStr(tt.want))
			}
			checkProblem(t, got.Problems, tt.problem)
		})
	}
}

// TestDecodeRecordEveryField sets every field through a string (numeric
// fields) or a number (text fields), the swapped types seen in practice.
func TestDecodeRecordEveryField(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("{")
	for i := range numFields {
		if i > 0 {
			b.WriteString(",")
		}
		if textField(i) {
			b.WriteString(`"` + fieldNames[i] + `":` + itoa(100+i))
		} else {
			b.WriteString(`"` + fieldNames[i] + `":" ` + itoa(100+i) + `.0 "`)
		}
	}
	b.WriteString(`,"extra":{"nested":[1,{"time":5}]},"Time":7,"TIME":"x"}`)
	got, err := DecodeRecord([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range numFields {
		if textField(i) {
			if p := *got.textPtr(i); p == nil || *p != itoa(100+i) {
				t.Errorf("%s = %#v, want %q", fieldNames[i], showStr(p), itoa(100+i))
			}
			continue
		}
		if p := *got.intPtr(i); p == nil || *p != int64(100+i) {
			t.Errorf("%s = %#v, want %d", fieldNames[i], showInt(p), 100+i)
		}
	}
	if len(got.Problems) != 0 {
		t.Errorf("Problems = %q, want none (unknown and differently cased keys are ignored)", got.Problems)
	}
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func TestDecodeRecordKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want *int64
	}{
		{"escaped key", `{"\u0074ime":5}`, i64(5)},
		{"last duplicate wins", `{"time":5,"time":6}`, i64(6)},
		{"last duplicate null", `{"time":5,"time":null}`, nil},
		{"case differs", `{"Time":5}`, nil},
		{"whitespace everywhere", " \n{ \"time\" :\t5 , \"x\" : [ ] }\r\n", i64(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeRecord([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if !eqInt(got.Time, tt.want) {
				t.Errorf("time = %#v, want %#v", showInt(got.Time), showInt(tt.want))
			}
		})
	}
}

func TestDecodeRecordNotObject(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		``, `  `, `null`, `[]`, `"x"`, `1`, `true`,
		`{`, `{"time"}`, `{"time":}`, `{"time":1,}`, `{"time":1}}`, `{"time":1} x`, `{} {}`,
		`{time:1}`, `{"time":01}`, `{"time":1.}`, `{"time":-}`, `{"time":+1}`, `{"time":.5}`,
		`{"time":tru}`, `{"time":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}",
		`{"a":[1,]}`, `{"a":{"b"}}`, `{"a":{"b":1,}}`, `{"a":"unterminated}`, `{"a":1 "b":2}`,
		strings.Repeat("[", 20) + `{}`,
		`{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
		`{"a":` + strings.Repeat(`{"a":`, maxDepth) + `1` + strings.Repeat("}", maxDepth) + `}`,
	} {
		if _, err := DecodeRecord([]byte(raw)); err == nil {
			t.Errorf("DecodeRecord(%.40q) = nil error, want an error", raw)
		}
		if json.Valid([]byte(raw)) && strings.HasPrefix(strings.TrimSpace(raw), "{") {
			t.Errorf("test case %.40q is a valid object: fix the table", raw)
		}
	}
	// Just within encoding/json's depth limit: accepted.
	for _, deep := range []string{
		`{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`,
		`{"a":` + strings.Repeat(`{"a":`, maxDepth-2) + `{}` + strings.Repeat("}", maxDepth-2) + `}`,
	} {
		if !json.Valid([]byte(deep)) {
			t.Fatalf("depth %d case is not valid JSON to encoding/json: fix the table", maxDepth)
		}
		if _, err := DecodeRecord([]byte(deep)); err != nil {
			t.Errorf("depth %d: %v", maxDepth, err)
		}
	}
}

func TestIsEmptyObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want bool
	}{
		{``, true}, {` `, true}, {`null`, true}, {" null\n", true}, {`{}`, true}, {"{ \n\t}", true},
		{" { } ", true}, {`{"a":1}`, false}, {`[]`, false}, {`""`, false}, {`0`, false},
		{`nul`, false}, {`{`, false}, {`}`, false}, {`{}}`, false},
	}
	for _, tt := range tests {
		if got := IsEmptyObject([]byte(tt.raw)); got != tt.want {
			t.Errorf("IsEmptyObject(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}

func TestDecodeRecordAllocs(t *testing.T) {
	// Counts, not timings: stable on a loaded machine. One allocation for
	// the record and one per non-nil text value (3 in the example).
	raw := []byte(exampleObject)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeRecord(raw); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("DecodeRecord allocates %.0f times per call, want <= 4", allocs)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	raw := []byte(exampleObject)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := DecodeRecord(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceRecord decodes with encoding/json and math/big: slow and
// obviously right, to check DecodeRecord against. ok is false when the input
// holds a value the reference cannot judge cheaply (huge exponents).
func referenceRecord(raw []byte) (rec *Record, bad [numFields]bool, ok bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, bad, false
	}
	rec = &Record{}
	for i := range numFields {
		v, present := obj[fieldNames[i]]
		if !present {
			continue
		}
		var x any
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			return nil, bad, false
		}
		if textField(i) {
			var s string
			switch x := x.(type) {
			case nil:
				continue
			case string:
				s = strings.TrimSpace(x)
			case json.Number:
				s = string(x)
			case bool:
				s = "false"
				if x {
					s = "true"
				}
			default:
				bad[i] = true
				continue
			}
			if s != "" {
				*rec.textPtr(i) = &s
			}
			continue
		}
		var s string
		switch x := x.(type) {
		case nil:
			continue
		case string:
			s = strings.TrimSpace(x)
			if s == "" {
				continue
			}
		case json.Number:
			s = string(x)
		default:
			bad[i] = true
			continue
		}
		m := decimalRE.FindStringSubmatch(s)
		if m == nil {
			bad[i] = true
			continue
		}
		if len(m[1]) > 6 {
			return nil, bad, false
		}
		var r big.Rat
		if _, okr := r.SetString(strings.TrimPrefix(s, "+")); !okr {
			return nil, bad, false
		}
		if !r.IsInt() || !r.Num().IsInt64() {
			bad[i] = true
			continue
		}
		n := r.Num().Int64()
		*rec.intPtr(i) = &n
	}
	return rec, bad, true
}

// decimalRE is the lenient numeric form; group 1 is the exponent's digits.
var decimalRE = regexp.MustCompile(`^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?0*([0-9]+))?$`)

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(exampleObject))
	f.Add([]byte(`{"time":"1606115215000","deviceType":" 2 ","waitTime":"2.5","mediaType":"abc","callingNum":13800000000}`))
	f.Add([]byte(`{"time":1e3,"dsn":-0,"handle":9223372036854775808,"keyId":{"a":[]},"calledNum":true,"mid":null}`))
	f.Add([]byte(`{"\u0074ime":"\u0031","time":2,"x":[{"y":"\"\\"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"a":[1,]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := DecodeRecord(raw)
		isObject := json.Valid(raw) && bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{"))
		if (err == nil) != isObject {
			t.Fatalf("DecodeRecord(%q) error = %v, but valid object = %v", raw, err, isObject)
		}
		if err != nil {
			return
		}
		want, bad, ok := referenceRecord(raw)
		if !ok {
			return
		}
		compareRecords(t, got, want)
		for i := range numFields {
			if !bad[i] {
				continue
			}
			found := false
			for _, p := range got.Problems {
				found = found || strings.HasPrefix(p, fieldNames[i]+": ")
			}
			if !found {
				t.Errorf("%s: reference says bad, no Problem in %q", fieldNames[i], got.Problems)
			}
		}
	})
}
