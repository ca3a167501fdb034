package cms

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestListSendsNumbersThenStringsOnce: the dates go as numbers; a server
// that wants strings (as Huawei's sample sends them) answers 0100002 once,
// the page is asked again with strings, and strings are kept.
func TestListSendsNumbersThenStringsOnce(t *testing.T) {
	t.Parallel()
	page := `{"resultCode":"0100000","resultDesc":{"data":[{"callId":"1762523104-1","callType":"0"}],"count":1}}`
	var ts *testServer
	ts = newTestServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		body := ts.requests()[n-1].Body // the server read it to verify the signature
		if bytes.Contains(body, []byte(`"beginDate":1`)) {
			writeJSON(w, 200, `{"resultCode":"0100002","resultDesc":"Invalid param: beginDate"}`)
			return
		}
		writeJSON(w, 200, page)
	})
	c := newTestClient(t, testConfig(ts))
	req := ListRequest{CCID: 1, VDN: 25, Inbound: true, Limit: 100,
		Begin: time.UnixMilli(1764547200000), End: time.UnixMilli(1764550799999)}
	for i := range 2 {
		res := c.List(t.Context(), req)
		if res.Class != ClassOK || res.Listing.Count != 1 || len(res.Listing.Items) != 1 {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
	var bodies []string
	for _, r := range ts.requests() {
		bodies = append(bodies, string(r.Body))
	}
	want := []string{
		`{"ccId":1,"vdn":25,"beginDate":1764547200000,"endDate":1764550799999,"isCallIn":"true","limit":100,"offset":0}`,
		`{"ccId":1,"vdn":25,"beginDate":"1764547200000","endDate":"1764550799999","isCallIn":"true","limit":100,"offset":0}`,
		`{"ccId":1,"vdn":25,"beginDate":"1764547200000","endDate":"1764550799999","isCallIn":"true","limit":100,"offset":0}`,
	}
	if !slices.Equal(bodies, want) {
		t.Fatalf("bodies sent:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
}
