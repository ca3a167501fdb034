package cms

import (
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
