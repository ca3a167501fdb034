package cms

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

// The published vectors of cms-api.md section 2.
func TestSignerVectors(t *testing.T) {
	t.Parallel()
	creds := authv2.Credentials{AK: "exampleAK", SK: "exampleSK"}
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	body := []byte(`{"ccId":1,"vdn":1,"callId":"1659513159000-546750"}`)
	tests := []struct {
		headers []string
		want    string
	}{
		{authv2.HeadersHostOnly, "auth-v2/exampleAK/2024-01-02T03:04:05Z/host/6411875f2de0030f21fda62b8f7aade979b79a19df4273962914f2f71419e92a"},
		{authv2.HeadersDefault, "auth-v2/exampleAK/2024-01-02T03:04:05Z/content-length;content-type;host/2b2fb3fd9a2d139e47866d78114547df7ca8cf123c0d859aa51f8a81e7fd4d97"},
	}
	for _, tc := range tests {
		s := newSigner(creds, tc.headers, authv2.LayoutSeconds, "10.22.26.181:28080")
		if got := s.sign(ts, QueryPath, body); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.headers, got, tc.want)
		}
	}
}

// TestSignerMatchesAuthv2 compares the client's allocation-free signer with
// the reference authv2.Sign over random requests, concurrently.
func TestSignerMatchesAuthv2(t *testing.T) {
	t.Parallel()
	headerSets := [][]string{
		authv2.HeadersDefault, authv2.HeadersHostOnly, {"content-type"}, {"content-length"},
		{"host", "content-length"}, {"content-type", "host"}, {"content-length", "content-type"},
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range 500 {
				creds := authv2.Credentials{AK: "ak-" + strconv.Itoa(r.IntN(1000)), SK: "sk/" + strconv.Itoa(r.Int())}
				host := []string{"10.22.26.181:28080", "cms.example.com:28443", "[::1]:8443", "localhost"}[r.IntN(4)]
				headers := headerSets[r.IntN(len(headerSets))]
				layout := []string{authv2.LayoutMillis, authv2.LayoutSeconds}[r.IntN(2)]
				path := []string{QueryPath, PingPath}[r.IntN(2)]
				body := make([]byte, r.IntN(300))
				for j := range body {
					body[j] = byte(r.IntN(256))
				}
				at := time.Unix(r.Int64N(4e9), r.Int64N(1e9))
				s := newSigner(creds, headers, layout, host)
				got := s.sign(at, path, body)
				got2 := s.sign(at, path, body) // reused state must not leak into the next signature
				want, err := authv2.Sign(creds, at.UTC().Format(layout), authv2.SignedHeaders(headers), authv2.Request{
					Method: "POST", Path: path, Body: body,
					Headers: map[string]string{"host": host, "content-type": contentType, "content-length": strconv.Itoa(len(body))},
				})
				if err != nil {
					t.Error(err)
					return
				}
				if got != want || got2 != want {
					t.Errorf("worker %d case %d (%v, %s, %s):\n got %s\nwant %s", w, i, headers, layout, host, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
