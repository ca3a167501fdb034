package cms

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDecodeListing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		code      string
		message   string
		count     int64
		hasCount  bool
		items     int
		malformed bool
	}{
		{file: "page.json", code: "0100000", count: 5, hasCount: true, items: 2},
		{file: "empty.json", code: "0100000", count: 0, hasCount: true},
		{file: "failure.json", code: "0100002", message: "Invalid param, must have parameter: 'isCallIn'"},
		{file: "bad_item.json", malformed: true},
		{file: "data_object.json", malformed: true},
		{file: "negative_count.json", malformed: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", "listings", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			l, err := DecodeListing(body)
			if tt.malformed {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Code != tt.code || l.Message != tt.message || l.Count != tt.count || l.HasCount != tt.hasCount || len(l.Items) != tt.items {
				t.Fatalf("listing = {%q %q %d %v %d items}, want {%q %q %d %v %d items}",
					l.Code, l.Message, l.Count, l.HasCount, len(l.Items), tt.code, tt.message, tt.count, tt.hasCount, tt.items)
			}
			for i, it := range l.Items {
				rec, err := DecodeListedCall(it)
				if err != nil || rec.CallID == nil {
					t.Errorf("item %d: %v, callId %v", i, err, rec)
				}
			}
		})
	}
	// Items are copies: the body may be reused.
	body, _ := os.ReadFile(filepath.Join("testdata", "listings", "page.json"))
	l, err := DecodeListing(body)
	if err != nil {
		t.Fatal(err)
	}
	first := string(l.Items[0])
	clear(body)
	if string(l.Items[0]) != first {
		t.Error("an item aliases the body")
	}
}

// FuzzDecodeListing: never panics; a body encoding/json rejects is malformed.
func FuzzDecodeListing(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "listings", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := DecodeListing(body)
		if err == nil && !json.Valid(body) {
			t.Fatalf("DecodeListing accepted invalid JSON %q", body)
		}
		for _, it := range l.Items {
			if _, err := DecodeListedCall(it); err != nil {
				t.Fatalf("item %q does not decode: %v", it, err)
			}
		}
	})
}
