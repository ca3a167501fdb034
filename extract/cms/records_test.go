package cms

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got, as indented JSON, with testdata/objects/<name>.golden.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "objects", name+".golden")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from %s:\n%s", name, path, b)
	}
}

// TestFinishedCallObjects decodes the documented samples of the finished-call
// interfaces (cms-discovery.md 1.7 and 2.4) and their quirks: numbers as
// strings, the "agentId " key with a trailing space, the CDR object's own
// result/resultCode, "" and null for absent values, unknown members.
func TestFinishedCallObjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		decode func([]byte) (any, error)
	}{
		{"cdr_sample", func(b []byte) (any, error) { return DecodeCallDetail(b) }},
		{"cdr_outbound", func(b []byte) (any, error) { return DecodeCallDetail(b) }},
		{"listed_sample", func(b []byte) (any, error) { return DecodeListedCall(b) }},
		{"listed_abandoned", func(b []byte) (any, error) { return DecodeListedCall(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", "objects", tt.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, got)
		})
	}
}

func TestCallDetailTrailingSpaceKey(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`{"agentId ":100}`, `{"agentId":100}`} {
		got, err := DecodeCallDetail([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got.AgentID == nil || *got.AgentID != 100 {
			t.Errorf("%s: agentId = %v, want 100", raw, showInt(got.AgentID))
		}
	}
}

func TestListedCallProblemsNameTheField(t *testing.T) {
	t.Parallel()
	got, err := DecodeListedCall([]byte(`{"subMediaType":"x","callId":{"a":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`subMediaType: "x" is not an integer`, `callId: an object is not text`} // in input order
	if strings.Join(got.Problems, "|") != strings.Join(want, "|") {
		t.Errorf("Problems = %q, want %q", got.Problems, want)
	}
}

// FuzzDecodeFinishedCall: the generated decoders accept exactly the JSON
// objects encoding/json accepts, and never panic.
func FuzzDecodeFinishedCall(f *testing.F) {
	for _, name := range []string{"cdr_sample", "cdr_outbound", "listed_sample", "listed_abandoned"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "objects", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"agentId ":"1","agentId":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		isObject := json.Valid(raw) && bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{"))
		_, err1 := DecodeCallDetail(raw)
		_, err2 := DecodeListedCall(raw)
		if (err1 == nil) != isObject || (err2 == nil) != isObject {
			t.Fatalf("decode(%q) errors %v / %v, but valid object = %v", raw, err1, err2, isObject)
		}
	})
}
