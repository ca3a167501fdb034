package cms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func respInt(v int64) *int64    { return &v }
func respText(s string) *string { return &s }

// responseCase is what a golden response in testdata/responses must decode to.
type responseCase struct {
	code      string
	legacy    bool
	message   string
	object    string // "" when Object must be nil; else a substring it must contain
	class     Class  // Classify(200, ...)
	malformed bool
	record    *Record // when set, DecodeRecord(Object) must equal it exactly
	check     func(t *testing.T, r *Record)
}

var responseCases = map[string]responseCase{
	"documented_example.json": {
		code: "0100000", class: ClassOK, object: `"callSkill": "defaultAudioSkill"`,
		record: &Record{
			Time: respInt(1606115215000), DSN: respInt(1), Handle: respInt(2), Server: respInt(0),
			KeyID: nil, CallingNum: respText("88880001"), CalledNum: respText("77770001"),
			MID: respInt(1), TrunkNo: respInt(65535), Priority: respInt(0), DeviceType: respInt(2), DeviceNo: respInt(127),
			CallSkill: respText("defaultAudioSkill"), PartyNum: respInt(2), CallFeature: respInt(0),
			OrgiCalledNum: nil, MediaType: respInt(5), Place: respInt(0), WaitTime: respInt(9),
			TotalTalkingTimes: respInt(275), LogonTimes: respInt(284), ServiceType: respInt(2),
			CallInCause: respInt(65535), EnterReason: respInt(0), MediaBillType: respText("0"),
		},
	},
	"legacy_only.json": {
		code: "0", legacy: true, class: ClassOK, object: `"dsn":7`,
		check: func(t *testing.T, r *Record) {
			checkRespInt(t, "dsn", r.DSN, 7)
			checkRespText(t, "mediaBillType", r.MediaBillType, "0")
			checkRespText(t, "callSkill", r.CallSkill, "defaultAudioSkill")
		},
	},
	"new_only.json": {
		code: "0100000", class: ClassOK, object: `"dsn":8`,
		check: func(t *testing.T, r *Record) {
			checkRespInt(t, "dsn", r.DSN, 8)
			checkRespText(t, "callSkill", r.CallSkill, "vipSkill")
			if r.MediaBillType != nil || r.TotalTalkingTimes != nil {
				t.Error("absent fields must stay nil")
			}
		},
	},
	"both_pairs_new_wins.json": {
		code: "0100000", class: ClassOK, object: "from-resultDesc",
		check: func(t *testing.T, r *Record) {
			checkRespInt(t, "dsn", r.DSN, 100)
			checkRespText(t, "callingNum", r.CallingNum, "from-resultDesc")
		},
	},
	"both_pairs_desc_text.json": {
		code: "0100000", message: "success", class: ClassOK, object: `"dsn":300`,
		check: func(t *testing.T, r *Record) { checkRespInt(t, "dsn", r.DSN, 300) },
	},
	"desc_empty_datas_full.json": {
		code: "0100000", class: ClassOK, object: `"dsn":400`,
		check: func(t *testing.T, r *Record) { checkRespInt(t, "dsn", r.DSN, 400) },
	},
	"failure_invalid_param.json":  {code: "0100002", message: "The parameter callId is invalid.", class: ClassPermanent},
	"failure_wrong_cti.json":      {code: "0100003", message: "The interface requires CTI V300R008, but V300R006 is found.", class: ClassPermanent},
	"failure_no_such_number.json": {code: "0101002", message: "The queried number does not exist on the UAP.", class: ClassPermanent},
	"failure_no_permission.json":  {code: "0101003", message: "Insufficient permission.", class: ClassPermanent},
	"failure_generic.json":        {code: "0100001", message: "Failed to invoke the interface.", class: ClassTransient},
	"failure_unknown_error.json":  {code: "0100999", message: "Unknown error.", class: ClassTransient},
	"failure_unknown_code.json":   {code: "0102042", message: "Some failure this client has never heard of.", class: ClassPermanent},
	"legacy_failure.json":         {code: "-1", legacy: true, message: "call does not exist", class: ClassPermanent},
	"null_object.json":            {code: "0100000", class: ClassNoData},
	"empty_object.json":           {code: "0100000", class: ClassNoData},
	"absent_object.json":          {code: "0100000", class: ClassNoData},
	"legacy_empty_object.json":    {code: "0", legacy: true, class: ClassNoData},
	"legacy_numeric_code.json": {
		code: "0", legacy: true, class: ClassOK, object: `"dsn":"9"`,
		check: func(t *testing.T, r *Record) {
			checkRespInt(t, "dsn", r.DSN, 9)
			checkRespInt(t, "mediaType", r.MediaType, 5)
		},
	},
	"extra_fields.json": {
		code: "0100000", class: ClassOK, object: "newField",
		check: func(t *testing.T, r *Record) {
			checkRespInt(t, "time", r.Time, 1606115215000)
			checkRespInt(t, "dsn", r.DSN, 1)
			checkRespText(t, "callSkill", r.CallSkill, "12")
			checkRespText(t, "orgiCalledNum", r.OrgiCalledNum, "88880002")
			checkRespInt(t, "logonTimes", r.LogonTimes, 284)
			if r.MediaBillType != nil || r.WaitTime != nil {
				t.Error(`"" and null must decode to nil`)
			}
			if len(r.Problems) != 0 {
				t.Errorf("problems = %v, want none", r.Problems)
			}
		},
	},
	"lenient_types.json": {
		code: "0100000", class: ClassOK, object: `"waitTime":"abc"`,
		check: func(t *testing.T, r *Record) {
			checkRespInt(t, "time", r.Time, 1606115215000)
			checkRespInt(t, "dsn", r.DSN, 12)
			checkRespText(t, "keyId", r.KeyID, "123456")
			checkRespText(t, "callingNum", r.CallingNum, "88880003")
			checkRespInt(t, "deviceType", r.DeviceType, 2)
			checkRespInt(t, "totalTalkingTimes", r.TotalTalkingTimes, 275)
			checkRespText(t, "mediaBillType", r.MediaBillType, "1")
			if r.Handle != nil || r.Server != nil || r.WaitTime != nil {
				t.Error("null, \"\" and \"abc\" must decode to nil")
			}
			if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "waitTime") {
				t.Errorf("problems = %q, want one naming waitTime", r.Problems)
			}
		},
	},
	"malformed_truncated.json": {malformed: true, class: ClassTransient},
	"malformed_no_code.json":   {malformed: true, class: ClassTransient},
	"malformed_array.json":     {malformed: true, class: ClassTransient},
}

func checkRespInt(t *testing.T, name string, got *int64, want int64) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s = %s, want %d", name, fmtRespInt(got), want)
	}
}

func checkRespText(t *testing.T, name string, got *string, want string) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s = %s, want %q", name, fmtRespText(got), want)
	}
}

func fmtRespInt(p *int64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func fmtRespText(p *string) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", *p)
}

func TestDecodeResponseGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "responses", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden responses: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		tc, ok := responseCases[name]
		if !ok {
			t.Errorf("%s has no expectation in responseCases", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := DecodeResponse(body)
			if got := Classify(200, resp, err); got != tc.class {
				t.Errorf("Classify(200) = %v, want %v", got, tc.class)
			}
			if tc.malformed {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeResponse: %v", err)
			}
			if resp.Code != tc.code || resp.Legacy != tc.legacy || resp.Message != tc.message {
				t.Errorf("envelope = {Code:%q Legacy:%v Message:%q}, want {%q %v %q}",
					resp.Code, resp.Legacy, resp.Message, tc.code, tc.legacy, tc.message)
			}
			if tc.object == "" {
				if resp.Object != nil {
					t.Errorf("Object = %s, want nil", resp.Object)
				}
				return
			}
			if !strings.Contains(string(resp.Object), tc.object) {
				t.Fatalf("Object = %s, want it to contain %s", resp.Object, tc.object)
			}
			rec, err := DecodeRecord(resp.Object)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if tc.record != nil && !reflect.DeepEqual(rec, tc.record) {
				t.Errorf("record =\n%+v\nwant\n%+v", derefRecord(rec), derefRecord(tc.record))
			}
			if tc.check != nil {
				tc.check(t, rec)
			}
		})
	}
	for name := range responseCases {
		if !seen[name] {
			t.Errorf("expectation %s has no golden file", name)
		}
	}
}

// derefRecord renders a record's pointer fields as values for diffs.
func derefRecord(r *Record) string {
	v := reflect.ValueOf(r).Elem()
	var b strings.Builder
	for i := range v.NumField() {
		f := v.Field(i)
		b.WriteString(v.Type().Field(i).Name + ":")
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				b.WriteString("nil ")
			} else {
				fmt.Fprintf(&b, "%v ", f.Elem())
			}
			continue
		}
		fmt.Fprintf(&b, "%v ", f)
	}
	return b.String()
}

func TestDecodeResponseEdgeCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		code, msg  string
		legacy     bool
		object     bool
		malformed  bool
	}{
		{name: "resultCode null falls back to result", body: `{"resultCode":null,"result":"0","resultDatas":{"dsn":1}}`, code: "0", legacy: true, object: true},
		{name: "resultCode wins over contradicting result", body: `{"resultCode":"0100002","result":"0","resultDesc":"bad"}`, code: "0100002", msg: "bad"},
		{name: "object resultDesc preferred over text resultDatas", body: `{"resultCode":"0100000","resultDesc":{"dsn":1},"resultDatas":"x"}`, code: "0100000", msg: "x", object: true},
		{name: "whitespace-only object is empty", body: "{\"result\":\"0\",\"resultDatas\":{ \n\t }}", code: "0", legacy: true},
		{name: "array object is not an object", body: `{"resultCode":"0100000","resultDesc":[1,2]}`, code: "0100000"},
		{name: "numeric message kept as text", body: `{"resultCode":"0100001","resultDesc":42}`, code: "0100001", msg: "42"},
		{name: "boolean code is malformed", body: `{"resultCode":true}`, malformed: true},
		{name: "empty body", body: ``, malformed: true},
		{name: "null body", body: `null`, malformed: true},
		{name: "html error page", body: `<html><body>502 Bad Gateway</body></html>`, malformed: true},
		{name: "member names match case-insensitively", body: `{"ResultCode":"0100000","RESULTDESC":{"dsn":1}}`, code: "0100000", object: true},
		{name: "escaped member name", body: `{"result\u0043ode":"0100000","resultDesc":"ok"}`, code: "0100000", msg: "ok"},
		{name: "escaped message", body: `{"resultCode":"0100001","resultDesc":"line\none \u00e9"}`, code: "0100001", msg: "line\none \u00e9"},
		{name: "last repeated member wins", body: `{"resultCode":"0100001","resultCode":"0100000","resultDesc":{"dsn":1}}`, code: "0100000", object: true},
		{name: "other members skipped", body: `{"x":[{"y":[1,2,{"z":null}]}],"resultCode":"0100000","resultDesc":{"dsn":1}}`, code: "0100000", object: true},
		{name: "trailing data", body: `{"resultCode":"0100000"} x`, malformed: true},
		{name: "truncated inside an unknown member", body: `{"resultCode":"0100000","x":[1,`, malformed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := DecodeResponse([]byte(tc.body))
			if tc.malformed {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.code || resp.Message != tc.msg || resp.Legacy != tc.legacy || (resp.Object != nil) != tc.object {
				t.Errorf("got %+v (object %s), want code %q msg %q legacy %v object %v",
					resp, resp.Object, tc.code, tc.msg, tc.legacy, tc.object)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	obj := []byte(`{"dsn":1}`)
	ok := func(code string) Response { return Response{Code: code, Object: obj} }
	none := func(code string) Response { return Response{Code: code} }
	legacy := func(code string) Response { return Response{Code: code, Legacy: true} }
	tlsErr := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	tests := []struct {
		name   string
		status int
		resp   Response
		err    error
		want   Class
	}{
		{"200 success with object", 200, ok(CodeSuccess), nil, ClassOK},
		{"200 legacy success with object", 200, Response{Code: "0", Legacy: true, Object: obj}, nil, ClassOK},
		{"200 success without object", 200, none(CodeSuccess), nil, ClassNoData},
		{"200 legacy success without object", 200, legacy("0"), nil, ClassNoData},
		{"201 success", 201, ok(CodeSuccess), nil, ClassOK},
		{"200 0100001", 200, none(CodeCallFailed), nil, ClassTransient},
		{"200 0100999", 200, none(CodeUnknownError), nil, ClassTransient},
		{"200 0100002", 200, none(CodeInvalidParam), nil, ClassPermanent},
		{"200 0100003", 200, none(CodeWrongCTI), nil, ClassPermanent},
		{"200 0101001", 200, none(CodeQualityInspect), nil, ClassPermanent},
		{"200 0101002", 200, none(CodeNoSuchNumber), nil, ClassPermanent},
		{"200 0101003", 200, none(CodeNoPermission), nil, ClassPermanent},
		{"200 unknown code", 200, none("0109999"), nil, ClassPermanent},
		{"200 unknown code with object", 200, ok("0109999"), nil, ClassPermanent},
		{"200 legacy failure", 200, legacy("1"), nil, ClassPermanent},
		{"200 legacy -1", 200, legacy("-1"), nil, ClassPermanent},
		{"200 missing code", 200, Response{}, nil, ClassTransient},
		{"200 malformed body", 200, Response{}, fmt.Errorf("x: %w", ErrMalformed), ClassTransient},
		{"200 oversized body", 200, Response{}, errBodyTooLarge, ClassTransient},
		{"401", 401, Response{}, nil, ClassFatal},
		{"401 with success body", 401, ok(CodeSuccess), nil, ClassFatal},
		{"403", 403, Response{}, nil, ClassFatal},
		{"401 body read failed", 401, Response{}, errBodyTooLarge, ClassFatal},
		{"400", 400, Response{}, nil, ClassPermanent},
		{"404", 404, Response{}, nil, ClassPermanent},
		{"405", 405, Response{}, nil, ClassPermanent},
		{"408 (a load balancer closing an idle connection)", 408, Response{}, nil, ClassTransient},
		{"413", 413, Response{}, nil, ClassPermanent},
		{"429", 429, Response{}, nil, ClassTransient},
		{"500", 500, Response{}, nil, ClassTransient},
		{"502", 502, Response{}, nil, ClassTransient},
		{"503", 503, Response{}, nil, ClassTransient},
		{"504", 504, Response{}, nil, ClassTransient},
		{"302", 302, Response{}, nil, ClassPermanent},
		{"transport error", 0, Response{}, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, ClassTransient},
		{"timeout", 0, Response{}, context.DeadlineExceeded, ClassTransient},
		{"cancelled", 0, Response{}, context.Canceled, ClassTransient},
		{"tls verification", 0, Response{}, fmt.Errorf("post: %w", tlsErr), ClassFatal},
		{"tls unknown authority", 0, Response{}, x509.UnknownAuthorityError{}, ClassFatal},
		{"tls hostname", 0, Response{}, x509.HostnameError{Host: "h"}, ClassFatal},
		{"tls expired", 0, Response{}, x509.CertificateInvalidError{Reason: x509.Expired}, ClassFatal},
		{"tls other handshake error", 0, Response{}, errors.New("tls: handshake failure"), ClassTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tc.status, tc.resp, tc.err); got != tc.want {
				t.Errorf("Classify(%d, %+v, %v) = %v, want %v", tc.status, tc.resp, tc.err, got, tc.want)
			}
		})
	}
}

// The client decodes from a pooled buffer and keeps Object as Result.Raw, so
// Object must not alias the body.
func TestDecodeResponseObjectIsACopy(t *testing.T) {
	t.Parallel()
	body := []byte(`{"resultCode":"0100000","resultDesc":{"dsn":1}}`)
	resp, err := DecodeResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if string(resp.Object) != `{"dsn":1}` {
		t.Errorf("Object changed with the body: %s", resp.Object)
	}
}

// Without a copy the object aliases the body, as the client uses it with
// DiscardRaw; the record decoded from it must not.
func TestDecodedRecordOutlivesTheBody(t *testing.T) {
	t.Parallel()
	body := []byte(`{"resultCode":"0100000","resultDesc":{"callSkill":"skill-1","keyId":"k\u0031","dsn":7}}`)
	resp, err := decodeResponse(body, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := DecodeRecord(resp.Object)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if *rec.CallSkill != "skill-1" || *rec.KeyID != "k1" || *rec.DSN != 7 {
		t.Errorf("record changed with the body: callSkill %q keyId %q dsn %d", *rec.CallSkill, *rec.KeyID, *rec.DSN)
	}
}
