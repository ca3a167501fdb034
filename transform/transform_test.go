package transform

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden.json from the current output")

// rowColumns maps each output column to its Row value. Written out by hand
// (not by reflection) so that TestRowColumns catches a Row field or column
// added on one side only.
func rowColumns(r Row) map[string]any {
	return map[string]any{
		"cc_id": r.CCID, "vdn": r.VDN, "call_id": r.CallID, "call_started_at": r.CallStartedAt,
		"entered_at": r.EnteredAt, "dsn": r.DSN, "handle": r.Handle, "server": r.Server,
		"key_id": r.KeyID, "calling_num": r.CallingNum, "called_num": r.CalledNum, "mid": r.MID,
		"trunk_no": r.TrunkNo, "priority": r.Priority, "device_type": r.DeviceType,
		"device_type_label": r.DeviceTypeLabel, "device_no": r.DeviceNo, "call_skill": r.CallSkill,
		"party_num": r.PartyNum, "call_feature": r.CallFeature, "call_feature_label": r.CallFeatureLabel,
		"orig_called_num": r.OrigCalledNum, "media_type": r.MediaType, "media_type_label": r.MediaTypeLabel,
		"place": r.Place, "wait_seconds": r.WaitSeconds, "talk_seconds": r.TalkSeconds,
		"logon_seconds": r.LogonSeconds, "service_type": r.ServiceType, "call_in_cause": r.CallInCause,
		"enter_reason": r.EnterReason, "enter_reason_label": r.EnterReasonLabel,
		"media_bill_type": r.MediaBillType, "fetched_at": r.FetchedAt, "run_id": r.RunID,
	}
}

func TestRowColumns(t *testing.T) {
	t.Parallel()
	m := rowColumns(Row{})
	if len(m) != len(Columns) {
		t.Fatalf("rowColumns has %d columns, Columns %d", len(m), len(Columns))
	}
	for _, c := range Columns {
		if _, ok := m[c]; !ok {
			t.Errorf("column %q missing from rowColumns", c)
		}
	}
}

// encodeGolden renders a ToRow result stably: row columns in Columns order,
// then raw, the unknowns and the decoder's problems.
func encodeGolden(t *testing.T, row Row, unknown []Unknown, problems []string) []byte {
	t.Helper()
	cols := rowColumns(row)
	var b bytes.Buffer
	b.WriteString(`{"row":{`)
	for i, c := range Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := json.Marshal(cols[c])
		if err != nil {
			t.Fatalf("marshal %s: %v", c, err)
		}
		b.WriteString(`"` + c + `":`)
		b.Write(v)
	}
	raw := row.Raw
	if raw == nil {
		raw = json.RawMessage("null")
	}
	b.WriteString(`,"raw":`)
	b.Write(raw)
	b.WriteString(`},"unknown":`)
	rest, err := json.Marshal(struct {
		U []Unknown `json:"unknown"`
		P []string  `json:"problems"`
	}{unknown, problems})
	if err != nil {
		t.Fatal(err)
	}
	// Splice the two lists in: {"unknown":X,"problems":Y} minus its opening.
	b.Write(rest[len(`{"unknown":`):])
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		t.Fatalf("indent golden: %v\n%s", err, b.Bytes())
	}
	out.WriteByte('\n')
	return out.Bytes()
}

type goldenInput struct {
	Key struct {
		CCID   int    `json:"ccId"`
		VDN    int    `json:"vdn"`
		CallID string `json:"callId"`
	} `json:"key"`
	FetchedAt time.Time       `json:"fetchedAt"`
	RunID     string          `json:"runId"`
	Object    json.RawMessage `json:"object"`
}

func TestGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join("testdata", "golden", "*.input.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"all-null", "callid-10-digit", "documented-example", "out-of-range", "strings-for-numbers", "unknown-codes"}
	var names []string
	for _, in := range inputs {
		names = append(names, strings.TrimSuffix(filepath.Base(in), ".input.json"))
	}
	if !slices.Equal(names, want) {
		t.Fatalf("golden cases = %v, want %v", names, want)
	}
	for i, path := range inputs {
		t.Run(names[i], func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var gi goldenInput
			if err := json.Unmarshal(data, &gi); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			key := extract.Key{CCID: gi.Key.CCID, VDN: gi.Key.VDN, CallID: gi.Key.CallID}
			if err := key.Validate(); err != nil {
				t.Fatalf("%s: key: %v", path, err)
			}
			rec, err := cms.DecodeRecord(gi.Object)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			row, unknown := ToRow(Input{Key: key, Record: rec, Raw: gi.Object, FetchedAt: gi.FetchedAt, RunID: gi.RunID})
			got := encodeGolden(t, row, unknown, rec.Problems)

			goldenPath := strings.TrimSuffix(path, ".input.json") + ".golden.json"
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantBytes, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, wantBytes) {
				t.Errorf("%s differs from the output (run with -update after checking):\n--- got\n%s", goldenPath, got)
			}
		})
	}
}

func i64(v int64) *int64   { return &v }
func str(v string) *string { return &v }

func TestTransformRules(t *testing.T) {
	t.Parallel()
	key := extract.Key{CCID: 65535, VDN: 5000, CallID: "1659513159000-546750"}
	fetched := time.Date(2024, 1, 2, 11, 4, 5, 123456789, time.FixedZone("CST", 8*3600))

	t.Run("times", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name    string
			time    *int64
			want    string // "" = NULL
			unknown []Unknown
		}{
			{"absent", nil, "", nil},
			{"zero is absent", i64(0), "", nil},
			{"negative is absent", i64(-1), "", nil},
			{"epoch ms", i64(1606115215000), "2020-11-23T07:06:55Z", nil},
			{"last ms of 9999", i64(maxMillis), "9999-12-31T23:59:59.999Z", nil},
			{"after 9999", i64(maxMillis + 1), "", []Unknown{{"entered_at_out_of_range", maxMillis + 1}}},
			{"max int64", i64(math.MaxInt64), "", []Unknown{{"entered_at_out_of_range", math.MaxInt64}}},
		} {
			row, unknown := ToRow(Input{Key: key, Record: &cms.Record{Time: tt.time}, FetchedAt: fetched})
			got := ""
			if row.EnteredAt != nil {
				got = row.EnteredAt.Format(time.RFC3339Nano)
				if row.EnteredAt.Location() != time.UTC {
					t.Errorf("%s: entered_at location %v, want UTC", tt.name, row.EnteredAt.Location())
				}
			}
			if got != tt.want || !slices.Equal(unknown, tt.unknown) {
				t.Errorf("%s: entered_at %q unknown %v, want %q %v", tt.name, got, unknown, tt.want, tt.unknown)
			}
		}
		row, _ := ToRow(Input{Key: key, FetchedAt: fetched, RunID: "r1"})
		if row.FetchedAt.Location() != time.UTC || !row.FetchedAt.Equal(fetched) {
			t.Errorf("fetched_at = %v, want %v in UTC", row.FetchedAt, fetched)
		}
		if row.RunID != "r1" || row.CCID != 65535 || row.VDN != 5000 || row.CallID != key.CallID {
			t.Errorf("key/run columns = %d %d %q %q", row.CCID, row.VDN, row.CallID, row.RunID)
		}
		if row.CallStartedAt == nil || !row.CallStartedAt.Equal(time.UnixMilli(1659513159000)) {
			t.Errorf("call_started_at = %v", row.CallStartedAt)
		}
	})

	t.Run("int32 range", func(t *testing.T) {
		t.Parallel()
		row, unknown := ToRow(Input{Key: key, Record: &cms.Record{
			Priority:    i64(math.MaxInt32),
			PartyNum:    i64(math.MinInt32),
			Place:       i64(math.MaxInt32 + 1),
			ServiceType: i64(math.MinInt32 - 1),
			CallInCause: i64(65535),
			MediaType:   i64(math.MaxInt64),
			EnterReason: i64(-1),
		}})
		if row.Priority == nil || *row.Priority != math.MaxInt32 || row.PartyNum == nil || *row.PartyNum != math.MinInt32 {
			t.Errorf("in-range extremes lost: priority %v party_num %v", row.Priority, row.PartyNum)
		}
		if row.Place != nil || row.ServiceType != nil || row.MediaType != nil || row.MediaTypeLabel != nil {
			t.Errorf("out-of-range values kept: place %v service_type %v media_type %v/%v", row.Place, row.ServiceType, row.MediaType, row.MediaTypeLabel)
		}
		if row.CallInCause == nil || *row.CallInCause != 65535 {
			t.Errorf("call_in_cause = %v, want 65535", row.CallInCause)
		}
		if row.EnterReason == nil || *row.EnterReason != -1 || row.EnterReasonLabel == nil || *row.EnterReasonLabel != UnknownLabel {
			t.Errorf("enter_reason = %v label %v, want -1 unknown", row.EnterReason, row.EnterReasonLabel)
		}
		want := []Unknown{ // in column order
			{"media_type_out_of_range", math.MaxInt64},
			{"place_out_of_range", math.MaxInt32 + 1},
			{"service_type_out_of_range", math.MinInt32 - 1},
			{"enter_reason", -1},
		}
		if !slices.Equal(unknown, want) {
			t.Errorf("unknown = %v, want %v", unknown, want)
		}
		for _, u := range unknown {
			if u.OutOfRange() != strings.HasSuffix(u.Field, "_out_of_range") {
				t.Errorf("%v.OutOfRange() = %v", u, u.OutOfRange())
			}
		}
	})

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		// Records built by hand are trimmed like decoded ones.
		row, unknown := ToRow(Input{Key: key, Record: &cms.Record{
			CallingNum: str(" +86 138-0000 "), CalledNum: str("   "), KeyID: str(""),
			OrgiCalledNum: str("0086138"), CallSkill: str("defaultAudioSkill"), MediaBillType: str("0"),
		}})
		check := func(col string, got *string, want string) {
			t.Helper()
			switch {
			case want == "" && got != nil:
				t.Errorf("%s = %q, want NULL", col, *got)
			case want != "" && (got == nil || *got != want):
				t.Errorf("%s = %v, want %q", col, got, want)
			}
		}
		check("calling_num", row.CallingNum, "+86 138-0000")
		check("called_num", row.CalledNum, "")
		check("key_id", row.KeyID, "")
		check("orig_called_num", row.OrigCalledNum, "0086138")
		check("call_skill", row.CallSkill, "defaultAudioSkill")
		check("media_bill_type", row.MediaBillType, "0")
		if unknown != nil {
			t.Errorf("unknown = %v, want nil", unknown)
		}
	})

	t.Run("nil record", func(t *testing.T) {
		t.Parallel()
		row, unknown := ToRow(Input{Key: key, Raw: json.RawMessage(`{"x":1}`)})
		if row.EnteredAt != nil || row.DSN != nil || row.MediaType != nil || row.MediaTypeLabel != nil || unknown != nil {
			t.Errorf("nil record gave values: %+v %v", row, unknown)
		}
		if string(row.Raw) != `{"x":1}` {
			t.Errorf("raw = %s", row.Raw)
		}
	})
}

func TestCallStartedAt(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		callID string
		want   string // "" = nil
	}{
		{"1659513159000-546750", "2022-08-03T07:52:39Z"},
		{"1659513159123-1", "2022-08-03T07:52:39.123Z"},
		{"1453723531-574", "2016-01-25T12:05:31Z"},
		{"1453723531", "2016-01-25T12:05:31Z"},
		{"0000000000-1", ""},
		{"145372353-574", ""},
		{"14537235310-574", ""},
		{"16595131590001-1", ""},
		{"-574", ""},
		{"", ""},
		{"14537a3531-574", ""},
		{"1453723531 -574", ""},
	} {
		got := CallStartedAt(tt.callID)
		switch {
		case tt.want == "" && got != nil:
			t.Errorf("CallStartedAt(%q) = %v, want nil", tt.callID, got)
		case tt.want != "" && got == nil:
			t.Errorf("CallStartedAt(%q) = nil, want %s", tt.callID, tt.want)
		case got != nil && (got.Format(time.RFC3339Nano) != tt.want || got.Location() != time.UTC):
			t.Errorf("CallStartedAt(%q) = %s (%v), want %s UTC", tt.callID, got.Format(time.RFC3339Nano), got.Location(), tt.want)
		}
	}
}

func TestLabelTables(t *testing.T) {
	t.Parallel()
	tables := []struct {
		name  string
		codes []Code
		label func(int32) (string, bool)
		spot  map[int32]string // "" = unknown
	}{
		{"mediaType", MediaTypes, MediaTypeLabel, map[int32]string{
			1: "text_chat", 5: "voice", 12: "isdn_video_2b1d", 19: "video", 22: "vc_call",
			23: "", 0: "", 24: "", 49: "", 50: "email_chat", 55: "h5_video", 56: "", -1: "",
		}},
		{"deviceType", DeviceTypes, DeviceTypeLabel, map[int32]string{
			1: "skill_queue", 2: "agent", 3: "ivr", 4: "", 5: "call", 6: "", 8: "virtual_device",
			14: "pgr", 15: "conference", 0: "", 16: "",
		}},
		{"callFeature", CallFeatures, CallFeatureLabel, map[int32]string{
			0: "customer", 4: "international_toll", 5: "", 39: "", 40: "reserved_outbound",
			43: "predictive_outbound", 45: "callback_request", 46: "", 51: "internal_help", 52: "",
		}},
		{"enterReason", EnterReasons, EnterReasonLabel, map[int32]string{
			0: "normal", 5: "agent_no_answer_transfer", 20: "called_busy", 21: "", 22: "mobile_off",
			31: "three_party_queue_timeout", 32: "", 33: "", 34: "network_call_failed_queued",
			54: "low_connection_rate_transfer", 55: "", 87: "", 88: "user_hung_up_after_answer",
			89: "user_hung_up_before_answer", 90: "", math.MaxInt32: "",
		}},
	}
	for _, tt := range tables {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for code, want := range tt.spot {
				label, known := tt.label(code)
				if want == "" {
					want = "unknown"
					if known {
						t.Errorf("code %d known, want unknown", code)
					}
				} else if !known {
					t.Errorf("code %d unknown, want known", code)
				}
				if label != want {
					t.Errorf("label(%d) = %q, want %q", code, label, want)
				}
			}
			// Every table entry: in code order, distinct snake_case labels,
			// described, and returned by the lookup.
			seen := map[string]bool{}
			for i, c := range tt.codes {
				if i > 0 && c.Code <= tt.codes[i-1].Code {
					t.Errorf("code %d after %d: not in code order", c.Code, tt.codes[i-1].Code)
				}
				if seen[c.Label] || c.Label == UnknownLabel || strings.Trim(c.Label, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
					t.Errorf("code %d: bad or duplicate label %q", c.Code, c.Label)
				}
				seen[c.Label] = true
				if c.Description == "" {
					t.Errorf("code %d: no description", c.Code)
				}
				if l, known := tt.label(c.Code); !known || l != c.Label {
					t.Errorf("lookup(%d) = %q %v, want %q", c.Code, l, known, c.Label)
				}
			}
		})
	}
	if n := []int{len(MediaTypes), len(DeviceTypes), len(CallFeatures), len(EnterReasons)}; !slices.Equal(n, []int{28, 10, 12, 54}) {
		t.Errorf("table sizes = %v, want [28 10 12 54] (codes.md)", n)
	}
}

func BenchmarkToRow(b *testing.B) {
	raw := []byte(`{"time":1606115215000,"dsn":71,"handle":4,"server":1,"keyId":"","callingNum":"13800000000",
"calledNum":"70001","mid":1,"trunkNo":65535,"priority":0,"deviceType":2,"deviceNo":157,"callSkill":"defaultAudioSkill",
"partyNum":2,"callFeature":0,"orgiCalledNum":"","mediaType":5,"place":0,"waitTime":9,"totalTalkingTimes":275,
"logonTimes":284,"serviceType":2,"callInCause":65535,"enterReason":0,"mediaBillType":0}`)
	rec, err := cms.DecodeRecord(raw)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Key: extract.Key{CCID: 1, VDN: 1, CallID: "1659513159000-546750"}, Record: rec, Raw: raw, FetchedAt: time.Now(), RunID: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		ToRow(in)
	}
}

func TestNULIsRemovedFromTextAndRaw(t *testing.T) {
	t.Parallel()
	skill := "default\x00Skill"
	raw := json.RawMessage(`{"callSkill":"default\u0000Skill","k\u0000":1,"literal":"\\u0000 stays"}`)
	row, _ := ToRow(Input{Key: extract.Key{CCID: 1, VDN: 1, CallID: "1700000000-1"}, Record: &cms.Record{CallSkill: &skill}, Raw: raw})
	if row.CallSkill == nil || *row.CallSkill != "defaultSkill" {
		t.Errorf("call_skill = %v, want defaultSkill", row.CallSkill)
	}
	var got map[string]any
	if err := json.Unmarshal(row.Raw, &got); err != nil {
		t.Fatal(err)
	}
	if got["callSkill"] != "defaultSkill" || got["k"] != json.Number("1") && got["k"] != float64(1) || got["literal"] != `\u0000 stays` {
		t.Errorf("raw = %s", row.Raw)
	}
	clean := json.RawMessage(`{"a":"b"}`)
	if row, _ := ToRow(Input{Key: extract.Key{CCID: 1, VDN: 1, CallID: "1-1"}, Raw: clean}); &row.Raw[0] != &clean[0] {
		t.Error("a document without NUL was copied")
	}
}

func TestRawIsMadeStorableAsJSONB(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
	}{
		{"lone high surrogate", `{"callSkill":"a\ud800b"}`},
		{"lone low surrogate upper case", `{"callSkill":"a\uDC00b"}`},
		{"invalid utf-8", "{\"callSkill\":\"a\xffb\"}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			row, _ := ToRow(Input{Key: extract.Key{CCID: 1, VDN: 1, CallID: "1-1"}, Raw: json.RawMessage(tc.raw)})
			if !utf8.Valid(row.Raw) || bytes.Contains(bytes.ToLower(row.Raw), []byte(`\ud8`)) || bytes.Contains(bytes.ToLower(row.Raw), []byte(`\udc`)) {
				t.Fatalf("raw still not storable: %q", row.Raw)
			}
			var m map[string]string
			if err := json.Unmarshal(row.Raw, &m); err != nil || m["callSkill"] != "a\uFFFDb" {
				t.Fatalf("raw = %q (%v), want callSkill a\\uFFFDb", row.Raw, err)
			}
		})
	}
}
