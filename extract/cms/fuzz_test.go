package cms

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeResponse feeds arbitrary bodies through the whole decoding path
// of a response: envelope, classification and the lenient record decoder.
// Seeds: testdata/fuzz/FuzzDecodeResponse plus every golden response.
func FuzzDecodeResponse(f *testing.F) {
	golden, _ := filepath.Glob(filepath.Join("testdata", "responses", "*.json"))
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := DecodeResponse(body)
		ref, refErr := decodeResponseReference(body)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("scanner error %v, encoding/json reference error %v", err, refErr)
		}
		if err == nil && (resp.Code != ref.Code || resp.Message != ref.Message || resp.Legacy != ref.Legacy || !bytes.Equal(resp.Object, ref.Object)) {
			t.Fatalf("scanner %+v, encoding/json reference %+v", resp, ref)
		}
		class := Classify(200, resp, err)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || class != ClassTransient {
				t.Fatalf("error %v (class %v) must wrap ErrMalformed and be transient", err, class)
			}
			return
		}
		if resp.Object == nil {
			if class == ClassOK {
				t.Fatal("ok without an object")
			}
			return
		}
		if !json.Valid(resp.Object) || resp.Object[0] != '{' || IsEmptyObject(resp.Object) {
			t.Fatalf("Object %q is not a non-empty JSON object", resp.Object)
		}
		// The object came out of a valid JSON document, so the lenient
		// decoder must accept it whatever the field values are.
		rec, err := DecodeRecord(resp.Object)
		if err != nil || rec == nil {
			t.Fatalf("DecodeRecord rejected %q: %v", resp.Object, err)
		}
	})
}

// decodeResponseReference is the envelope decoder built on encoding/json
// that the single-pass scanner replaced; the fuzzer holds the two equal.
func decodeResponseReference(body []byte) (Response, error) {
	var env struct {
		ResultCode  json.RawMessage `json:"resultCode"`
		Result      json.RawMessage `json:"result"`
		ResultDesc  json.RawMessage `json:"resultDesc"`
		ResultDatas json.RawMessage `json:"resultDatas"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return Response{}, malformed(err.Error())
	}
	text := func(raw json.RawMessage) (string, bool) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return "", false
		}
		switch c := raw[0]; {
		case c == '"':
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "", false
			}
			return s, true
		case c == '-' || c >= '0' && c <= '9':
			return string(raw), true
		}
		return "", false
	}
	isObject := func(raw json.RawMessage) bool {
		raw = bytes.TrimSpace(raw)
		return len(raw) > 0 && raw[0] == '{'
	}
	object := func(raw json.RawMessage) json.RawMessage {
		if IsEmptyObject(raw) {
			return nil
		}
		return raw
	}
	var r Response
	if code, ok := text(env.ResultCode); ok {
		r.Code = code
	} else if code, ok := text(env.Result); ok {
		r.Code, r.Legacy = code, true
	} else {
		return Response{}, malformed("neither resultCode nor result present")
	}
	switch {
	case isObject(env.ResultDesc):
		r.Object = object(env.ResultDesc)
		if r.Object == nil && isObject(env.ResultDatas) {
			r.Object = object(env.ResultDatas)
		}
	case isObject(env.ResultDatas):
		r.Object = object(env.ResultDatas)
	}
	if msg, ok := text(env.ResultDesc); ok {
		r.Message = msg
	} else if msg, ok := text(env.ResultDatas); ok {
		r.Message = msg
	}
	return r, nil
}
