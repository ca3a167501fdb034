package cms

import (
	"bytes"
	"net/http"
	"testing"
)

// A single HTTP-level failure (a proxy's 404 or 400) says nothing about the
// body shape: it must not fix the shape, or, when the server wants the
// wrapped one, every later CDR call would end permanent 0100002.
func TestAnHTTPErrorDoesNotFixTheBodyShape(t *testing.T) {
	t.Parallel()
	var ts *testServer
	ts = newTestServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			writeJSON(w, http.StatusNotFound, `not found`)
			return
		}
		reqs := ts.requests()
		body := reqs[len(reqs)-1].Body
		if !bytes.HasPrefix(body, []byte(`{"queryParam"`)) {
			writeJSON(w, 200, `{"resultCode":"0100002","resultDesc":"Invalid param, must have parameter: 'queryParam'"}`)
			return
		}
		writeJSON(w, 200, `{"resultCode":"0100000","resultDesc":{"callId":"1659513159000-546750","ccId":1}}`)
	})
	c := newTestClient(t, testConfig(ts))
	req := Request{Key: testKey, Inbound: true}
	first := Fetch(t.Context(), c, CallDetailByID, req)
	t.Logf("first: %v %d %s", first.Class, first.HTTPStatus, first.Message)
	for i := 0; i < 3; i++ {
		res := Fetch(t.Context(), c, CallDetailByID, req)
		if res.Class != ClassOK {
			t.Errorf("call %d after one 404: %v %s %s (shape latched flat)", i, res.Class, res.ResultCode, res.Message)
		}
	}
}
