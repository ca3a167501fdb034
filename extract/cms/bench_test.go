package cms

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// cannedTransport answers every request with the same 200 body without a
// network: the benchmark measures only the client's own work (marshal,
// sign, build the request, read and decode the response).
type cannedTransport struct {
	body   []byte
	header http.Header
}

func (c *cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Consume the request body as a real transport would.
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return nil, err
	}
	req.Body.Close()
	return &http.Response{
		StatusCode:    http.StatusOK,
		Status:        "200 OK",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        c.header,
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       req,
	}, nil
}

// BenchmarkQueryClientCost is one successful query's client-side cost,
// against the documented example response (both envelope pairs, ~1.3 KB).
func BenchmarkQueryClientCost(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "responses", "documented_example.json"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{BaseURL: "https://10.22.26.181:28080", Credentials: testCreds})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.rt = &cannedTransport{body: body, header: http.Header{"Content-Type": {contentType}}}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		res := c.Query(ctx, testKey)
		if res.Class != ClassOK {
			b.Fatalf("%v: %s", res.Class, res.Message)
		}
	}
}
