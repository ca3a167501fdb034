package cmssim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

var testCreds = authv2.Credentials{AK: "testAK", SK: "testSK-secret"}

// start runs a simulator for the test; TLS unless cfg says plain HTTP via
// plain=true.
func start(t *testing.T, cfg Config, plain bool) *Server {
	t.Helper()
	cfg.TLS = !plain
	if cfg.Credentials == (authv2.Credentials{}) {
		cfg.Credentials = testCreds
	}
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// client signs requests the way the ETL client does.
type client struct {
	hc      *http.Client
	base    string
	creds   authv2.Credentials
	headers []string
	layout  string
}

func newClient(t *testing.T, s *Server) *client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	if ca := s.CAFile(); ca != "" {
		pemBytes, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			t.Fatal("CA file holds no certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{hc: &http.Client{Transport: tr}, base: s.URL(), creds: s.cfg.Credentials,
		headers: authv2.HeadersDefault, layout: authv2.LayoutSeconds}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (c *client) post(ctx context.Context, path string, body []byte) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	sh := authv2.SignedHeaders(c.headers)
	auth, err := authv2.Sign(c.creds, time.Now().UTC().Format(c.layout), sh, authv2.Request{
		Method: req.Method,
		Path:   req.URL.Path,
		Query:  req.URL.RawQuery,
		Headers: map[string]string{
			"host":           req.URL.Host,
			"content-length": strconv.Itoa(len(body)),
			"content-type":   req.Header.Get("Content-Type"),
		},
		Body: body,
	})
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func (c *client) query(t *testing.T, k extract.Key) reply {
	t.Helper()
	r, err := c.post(t.Context(), PathQuery, keyBody(k))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keyBody(k extract.Key) []byte {
	b, _ := json.Marshal(map[string]any{"ccId": k.CCID, "vdn": k.VDN, "callId": k.CallID})
	return b
}

// codeOf reads resultCode, else the legacy result, as a client must.
func codeOf(t *testing.T, body []byte) (code string, top map[string]any) {
	t.Helper()
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	code, ok := top["resultCode"].(string)
	if !ok {
		code, _ = top["result"].(string)
	}
	return code, top
}

var key1 = extract.Key{CCID: 1, VDN: 1, CallID: "1659513159000-546750"}

func TestSignatureAccepted(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Seed: 3}, false)
	tests := []struct {
		name    string
		headers []string
		layout  string
	}{
		{"default headers, seconds", authv2.HeadersDefault, authv2.LayoutSeconds},
		{"default headers, millis", authv2.HeadersDefault, authv2.LayoutMillis},
		{"host only, seconds", authv2.HeadersHostOnly, authv2.LayoutSeconds},
		{"host only, millis", authv2.HeadersHostOnly, authv2.LayoutMillis},
		{"content-type and host", []string{"content-type", "host"}, authv2.LayoutSeconds},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, s)
			c.headers, c.layout = tc.headers, tc.layout
			r := c.query(t, key1)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if !bytes.Equal(r.body, ResponseFor(3, key1).Body) {
				t.Errorf("body differs from ResponseFor:\n%s", r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	s := start(t, Config{}, false)
	good := keyBody(key1)
	tests := []struct {
		name string
		// do sends one request and returns its status
		do func(t *testing.T, c *client) int
	}{
		{"wrong SK", func(t *testing.T, c *client) int {
			c.creds.SK = "wrong"
			r, err := c.post(t.Context(), PathQuery, good)
			must(t, err)
			return r.status
		}},
		{"wrong AK", func(t *testing.T, c *client) int {
			c.creds.AK = "otherAK"
			r, err := c.post(t.Context(), PathQuery, good)
			must(t, err)
			return r.status
		}},
		{"ping wrong SK", func(t *testing.T, c *client) int {
			c.creds.SK = "wrong"
			r, err := c.post(t.Context(), PathPing, []byte(`{}`))
			must(t, err)
			return r.status
		}},
		{"missing header", func(t *testing.T, c *client) int { return rawPost(t, c, good, "") }},
		{"malformed header", func(t *testing.T, c *client) int { return rawPost(t, c, good, "Bearer abc") }},
		{"tampered body", func(t *testing.T, c *client) int {
			// Sign the good body, send another of the same length.
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, c.base+PathQuery, bytes.NewReader(good))
			auth, err := authv2.Sign(c.creds, time.Now().UTC().Format(authv2.LayoutSeconds), "host",
				authv2.Request{Method: "POST", Path: PathQuery, Headers: map[string]string{"host": req.URL.Host}, Body: good})
			must(t, err)
			return rawPost(t, c, bytes.Replace(good, []byte(`"vdn":1`), []byte(`"vdn":2`), 1), auth)
		}},
		{"signed header not sent", func(t *testing.T, c *client) int {
			host := strings.TrimPrefix(c.base, "http://")
			auth, err := authv2.Sign(c.creds, time.Now().UTC().Format(authv2.LayoutSeconds), "host;x-extra",
				authv2.Request{Method: "POST", Path: PathQuery, Headers: map[string]string{"host": host, "x-extra": "v"}, Body: good})
			must(t, err)
			return rawPost(t, c, good, auth)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.do(t, newClient(t, s)); got != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", got)
			}
		})
	}
	if got := s.Stats().ByOutcome[OutcomeUnauthorized]; got != int64(len(tests)) {
		t.Errorf("unauthorized count %d, want %d", got, len(tests))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rawPost sends body with the given Authorization header as is.
func rawPost(t *testing.T, c *client, body []byte, auth string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.base+PathQuery, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.hc.Do(req)
	must(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestBadBody(t *testing.T) {
	t.Parallel()
	s := start(t, Config{TrackCallIDs: true}, true)
	c := newClient(t, s)
	tests := []struct{ name, body, inDesc string }{
		{"not JSON", `ccId=1`, "JSON"},
		{"array", `[1,2]`, "JSON"},
		{"empty", ``, "JSON"},
		{"missing callId", `{"ccId":1,"vdn":1}`, "callId"},
		{"missing ccId", `{"vdn":1,"callId":"1-2"}`, "ccId"},
		{"ccId as string", `{"ccId":"1","vdn":1,"callId":"1-2"}`, "ccId"},
		{"ccId fraction", `{"ccId":1.5,"vdn":1,"callId":"1-2"}`, "ccId"},
		{"ccId zero", `{"ccId":0,"vdn":1,"callId":"1-2"}`, "ccId"},
		{"ccId too big", `{"ccId":65536,"vdn":1,"callId":"1-2"}`, "ccId"},
		{"vdn too big", `{"ccId":1,"vdn":5001,"callId":"1-2"}`, "vdn"},
		{"callId letters", `{"ccId":1,"vdn":1,"callId":"abc-1"}`, "callId"},
		{"callId no dash", `{"ccId":1,"vdn":1,"callId":"12345"}`, "callId"},
		{"callId too long", `{"ccId":1,"vdn":1,"callId":"1659513159000-54675012"}`, "callId"},
		{"callId number", `{"ccId":1,"vdn":1,"callId":1}`, "callId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.post(t.Context(), PathQuery, []byte(tc.body))
			must(t, err)
			if r.status != http.StatusOK {
				t.Fatalf("status %d, want 200", r.status)
			}
			code, top := codeOf(t, r.body)
			desc, _ := top["resultDesc"].(string)
			if code != "0100002" || !strings.Contains(desc, tc.inDesc) {
				t.Errorf("code %q desc %q, want 0100002 mentioning %s", code, desc, tc.inDesc)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		big := `{"ccId":1,"vdn":1,"callId":"1-2","pad":"` + strings.Repeat("x", 70<<10) + `"}`
		r, err := c.post(t.Context(), PathQuery, []byte(big))
		must(t, err)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", r.status)
		}
	})
	st := s.Stats()
	if st.ByOutcome[OutcomeBadRequest] != int64(len(tests))+1 || len(st.CallIDRequests) != 0 {
		t.Errorf("bad_request %d (want %d), tracked %v", st.ByOutcome[OutcomeBadRequest], len(tests)+1, st.CallIDRequests)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	s := start(t, Config{}, false)
	c := newClient(t, s)
	r, err := c.post(t.Context(), PathPing, []byte(`{"probe":"etl","n":1}`))
	must(t, err)
	var got struct {
		Request map[string]any `json:"request"`
		Status  string         `json:"status"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
		t.Fatalf("status %d body %s: %v", r.status, r.body, err)
	}
	if got.Status != "UP" || got.Request["probe"] != "etl" || got.Request["n"] != 1.0 {
		t.Errorf("ping echoed %s", r.body)
	}
	if n := s.Stats().ByOutcome[OutcomePing]; n != 1 {
		t.Errorf("ping count %d", n)
	}
}

// SetDown answers every API request, ping included, with 502 until the API
// is brought back.
func TestSetDown(t *testing.T) {
	t.Parallel()
	s := start(t, Config{}, false)
	c := newClient(t, s)
	k := extract.Key{CCID: 1, VDN: 1, CallID: "1700000000-1"}
	s.SetDown(true)
	for _, path := range []string{PathQuery, PathPing} {
		r, err := c.post(t.Context(), path, keyBody(k))
		must(t, err)
		if r.status != http.StatusBadGateway {
			t.Errorf("%s while down: HTTP %d, want 502", path, r.status)
		}
	}
	s.SetDown(false)
	if r := c.query(t, k); r.status != 200 {
		t.Errorf("query after the API came back: HTTP %d", r.status)
	}
	if n := s.Stats().ByOutcome[OutcomeDown]; n != 2 {
		t.Errorf("%d requests counted down, want 2", n)
	}
}

func TestDeterministicOverHTTP(t *testing.T) {
	t.Parallel()
	s := start(t, Config{Seed: 11, NoDataShare: 0.3, PermanentShare: 0.2}, true)
	c := newClient(t, s)
	for i := range 60 {
		k := testKey(i)
		a, b := c.query(t, k), c.query(t, k)
		if !bytes.Equal(a.body, b.body) {
			t.Fatalf("key %v answered differently:\n%s\n%s", k, a.body, b.body)
		}
		plan := PlanFor(s.cfg, k)
		code, top := codeOf(t, a.body)
		env, obj := envelopeOf(t, a.body)
		switch plan.Outcome {
		case OutcomeOK:
			if !bytes.Equal(a.body, ResponseFor(11, k).Body) {
				t.Errorf("key %v: ok body differs from ResponseFor", k)
			}
		case OutcomeNoData:
			if code != "0100000" && code != "0" || len(obj) != 0 {
				t.Errorf("key %v: no-data body %s", k, a.body)
			}
			desc, hasDesc := top["resultDesc"]
			if hasDesc && env != EnvelopeBothTextDesc && desc != nil && len(desc.(map[string]any)) != 0 {
				t.Errorf("key %v: no-data resultDesc %v", k, desc)
			}
		case OutcomePermanent:
			desc, _ := top["resultDesc"].(string)
			if code != plan.Code || desc == "" {
				t.Errorf("key %v: permanent code %q desc %q, want %s", k, code, desc, plan.Code)
			}
		}
	}
}

func TestTransientFaultsRecover(t *testing.T) {
	t.Parallel()
	for _, kind := range AllFaultKinds {
		for _, attempts := range []int{1, 2} {
			t.Run(kind+"/"+strconv.Itoa(attempts), func(t *testing.T) {
				t.Parallel()
				s := start(t, Config{TransientShare: 1, TransientKinds: []string{kind}, TransientAttempts: attempts}, false)
				c := newClient(t, s)
				for i := range 2 {
					k := testKey(i)
					for a := 1; a <= attempts; a++ {
						ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
						if kind != FaultHang {
							cancel()
							ctx, cancel = t.Context(), func() {}
						}
						r, err := c.post(ctx, PathQuery, keyBody(k))
						cancel()
						checkFault(t, kind, r, err)
					}
					r := c.query(t, k)
					if code, _ := codeOf(t, r.body); r.status != 200 || (code != "0100000" && code != "0") {
						t.Errorf("key %v after %d failures: status %d body %s", k, attempts, r.status, r.body)
					}
				}
				st := s.Stats()
				if st.ByOutcome[faultOutcome[kind]] != int64(2*attempts) || st.ByOutcome[OutcomeOK] != 2 {
					t.Errorf("outcomes %v, want %d %s and 2 ok", st.ByOutcome, 2*attempts, faultOutcome[kind])
				}
			})
		}
	}
}

var faultOutcome = map[string]string{
	FaultServerError: OutcomeServerError, FaultUnavailable: OutcomeUnavailable, FaultHang: OutcomeHang, FaultDrop: OutcomeDrop,
	FaultTruncated: OutcomeTruncated, FaultGenericFailure: OutcomeGenericFailure, FaultUnknownError: OutcomeUnknownError,
}

func checkFault(t *testing.T, kind string, r reply, err error) {
	t.Helper()
	switch kind {
	case FaultServerError:
		if err != nil || !slices.Contains([]int{500, 502, 503, 504}, r.status) {
			t.Errorf("5xx: status %d err %v", r.status, err)
		}
	case FaultUnavailable:
		if err != nil || r.status != 503 || r.header.Get("Retry-After") != "" {
			t.Errorf("503: status %d Retry-After %q err %v, want 503 without Retry-After", r.status, r.header.Get("Retry-After"), err)
		}
	case FaultHang:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("hang: status %d err %v, want deadline exceeded", r.status, err)
		}
	case FaultDrop:
		var ue *url.Error
		if !errors.As(err, &ue) || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF")) {
			t.Errorf("drop: status %d err %v, want EOF", r.status, err)
		}
	case FaultTruncated:
		if err != nil || r.status != 200 || json.Valid(r.body) || len(r.body) < 20 {
			t.Errorf("truncated: status %d err %v valid %v body %s", r.status, err, json.Valid(r.body), r.body)
		}
	case FaultGenericFailure, FaultUnknownError:
		if err != nil || r.status != 200 {
			t.Fatalf("%s: status %d err %v", kind, r.status, err)
		}
		if code, top := codeOf(t, r.body); code != kind || top["resultDesc"] == "" {
			t.Errorf("%s: body %s", kind, r.body)
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := start(t, Config{RateLimit: 0.01, RateBurst: 2, RetryAfter: 2500 * time.Millisecond, TrackSeconds: true}, false)
	c := newClient(t, s)
	var statuses []int
	for range 4 {
		r := c.query(t, key1)
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") != "3" {
			t.Errorf("Retry-After %q, want 3", r.header.Get("Retry-After"))
		}
	}
	if !slices.Equal(statuses, []int{200, 200, 429, 429}) {
		t.Errorf("statuses %v", statuses)
	}
	if n := s.Stats().ByOutcome[OutcomeThrottled]; n != 2 {
		t.Errorf("throttled %d", n)
	}
	var requests, accepted, throttled int64
	secs := s.Seconds()
	for i, sec := range secs {
		requests, accepted, throttled = requests+sec.Requests, accepted+sec.Accepted(), throttled+sec.Throttled
		if i > 0 && sec.Unix <= secs[i-1].Unix {
			t.Errorf("seconds out of order: %v", secs)
		}
	}
	if requests != 4 || accepted != 2 || throttled != 2 {
		t.Errorf("per-second counts %+v: %d requests, %d accepted, %d throttled; want 4, 2, 2", secs, requests, accepted, throttled)
	}
	if start(t, Config{}, false).Seconds() != nil {
		t.Error("seconds tracked without TrackSeconds")
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	const hanging = 6
	// Keys 0..hanging-1 hang (TransientShare 1 would hang everything; pick
	// hanging keys by plan instead).
	cfg := Config{TransientShare: 0.5, TransientKinds: []string{FaultHang}, TrackCallIDs: true, Seed: 5}
	s := start(t, cfg, false)
	c := newClient(t, s)
	var hangKeys, okKeys []extract.Key
	for i := 0; len(hangKeys) < hanging || len(okKeys) < 3; i++ {
		k := testKey(i)
		if PlanFor(s.cfg, k).Fault == FaultHang {
			hangKeys = append(hangKeys, k)
		} else {
			okKeys = append(okKeys, k)
		}
	}
	hangKeys, okKeys = hangKeys[:hanging], okKeys[:3]

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, k := range hangKeys {
		wg.Go(func() {
			if _, err := c.post(ctx, PathQuery, keyBody(k)); !errors.Is(err, context.Canceled) {
				t.Errorf("hanging request ended with %v", err)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().InFlight < hanging {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests in flight", s.Stats().InFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	before := time.Now().Unix()
	for _, k := range okKeys {
		c.query(t, k)
	}
	c.query(t, okKeys[0])
	sameSecond := time.Now().Unix() == before
	bad := *c
	bad.creds.SK = "nope"
	if _, err := bad.post(t.Context(), PathQuery, keyBody(okKeys[1])); err != nil {
		t.Fatal(err)
	}

	st := s.Stats()
	if st.PeakConcurrency != hanging {
		t.Errorf("peak concurrency %d, want %d", st.PeakConcurrency, hanging)
	}
	if st.ByOutcome[OutcomeHang] != hanging || st.ByOutcome[OutcomeOK] != 4 || st.ByOutcome[OutcomeUnauthorized] != 1 {
		t.Errorf("by outcome %v", st.ByOutcome)
	}
	if st.Requests != hanging+5 {
		t.Errorf("requests %d, want %d", st.Requests, hanging+5)
	}
	if st.PeakPerSecond < 1 || st.PeakPerSecond > st.Requests || sameSecond && st.PeakPerSecond < 4 {
		t.Errorf("peak per second %d (requests %d, same second %v)", st.PeakPerSecond, st.Requests, sameSecond)
	}
	want := map[string]int64{okKeys[0].String(): 2, okKeys[1].String(): 1, okKeys[2].String(): 1}
	for _, k := range hangKeys {
		want[k.String()] = 1
	}
	if !mapsEqual(st.CallIDRequests, want) {
		t.Errorf("call id requests %v, want %v", st.CallIDRequests, want)
	}

	// The same numbers over HTTP, without auth.
	resp, err := c.hc.Get(s.URL() + PathStats)
	must(t, err)
	defer resp.Body.Close()
	var viaHTTP Stats
	if err := json.NewDecoder(resp.Body).Decode(&viaHTTP); err != nil {
		t.Fatal(err)
	}
	viaHTTP.InFlight = st.InFlight
	if !mapsEqual(viaHTTP.ByOutcome, st.ByOutcome) || viaHTTP.Requests != st.Requests || viaHTTP.PeakConcurrency != st.PeakConcurrency ||
		!mapsEqual(viaHTTP.CallIDRequests, st.CallIDRequests) {
		t.Errorf("GET %s = %+v, Stats() = %+v", PathStats, viaHTTP, st)
	}
	for _, name := range outcomeNames {
		if _, ok := viaHTTP.ByOutcome[name]; !ok {
			t.Errorf("outcome %s missing from stats", name)
		}
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestTLSCertificate(t *testing.T) {
	t.Parallel()
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	s := start(t, Config{CertFile: certFile}, false)
	if s.CAFile() != certFile || !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("CAFile %q URL %q", s.CAFile(), s.URL())
	}
	c := newClient(t, s)
	if r := c.query(t, key1); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}

	// The certificate also names localhost and ::1.
	pemBytes, err := os.ReadFile(certFile)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}}
		resp, err := (&http.Client{Transport: tr}).Get(s.URL() + PathStats)
		if err != nil {
			t.Errorf("server name %s: %v", name, err)
			continue
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
	}

	// Without the CA the certificate is not trusted.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	_, err = (&http.Client{Transport: tr}).Get(s.URL() + PathStats)
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		t.Errorf("untrusted client: %v, want unknown authority", err)
	}
}

func TestCloseRemovesTempCertAndEndsHangs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := Start(ctx, Config{TLS: true, Credentials: testCreds, TransientShare: 1, TransientKinds: []string{FaultHang}})
	must(t, err)
	ca := s.CAFile()
	if _, err := os.Stat(ca); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := c.post(t.Context(), PathQuery, keyBody(key1))
		done <- err
	}()
	for s.Stats().InFlight == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the context ends the server like Close does
	select {
	case err := <-done:
		if err == nil {
			t.Error("hanging request got an answer after close")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hanging request survived the server")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(ca); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp CA file left behind: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Credentials: authv2.Credentials{AK: "a", SK: "very-secret-sk"}}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"full", func(c *Config) {
			c.TLS, c.CertFile, c.NoDataShare, c.PermanentShare, c.TransientShare = true, "x.pem", 0.5, 0.25, 0.25
			c.TransientKinds, c.RateLimit, c.RateBurst = []string{"hang", "0100999"}, 10, 5
		}, ""},
		{"no AK", func(c *Config) { c.Credentials.AK = "" }, "Credentials.AK"},
		{"no SK", func(c *Config) { c.Credentials.SK = "" }, "Credentials.SK"},
		{"bad addr", func(c *Config) { c.Addr = "nohostport" }, "Addr"},
		{"cert without TLS", func(c *Config) { c.CertFile = "x.pem" }, "CertFile"},
		{"negative latency", func(c *Config) { c.Latency = -1 }, "Latency"},
		{"share above 1", func(c *Config) { c.NoDataShare = 1.5 }, "NoDataShare"},
		{"shares sum above 1", func(c *Config) { c.NoDataShare, c.TransientShare = 0.6, 0.6 }, "NoDataShare+PermanentShare+TransientShare"},
		{"unknown kind", func(c *Config) { c.TransientKinds = []string{"explode"} }, "TransientKinds"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "RateLimit"},
		{"negative attempts", func(c *Config) { c.TransientAttempts = -1 }, "TransientAttempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":")):
				t.Errorf("error %v, want one naming %s", err, tc.field)
			case err != nil && strings.Contains(err.Error(), "very-secret-sk"):
				t.Errorf("error leaks the SK: %v", err)
			}
		})
	}
}

// BenchmarkServerPlainHTTP measures the simulator's throughput over loopback
// plain HTTP with zero latency, signing like the ETL client. Compare with
// BenchmarkBareHTTP (the same loop against a handler that does nothing).
func BenchmarkServerPlainHTTP(b *testing.B) {
	s, err := Start(b.Context(), Config{Credentials: testCreds})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchLoop(b, s.URL(), testCreds)
	st := s.Stats()
	b.ReportMetric(float64(st.PeakPerSecond), "peak-req/s")
	if st.ByOutcome[OutcomeOK] < int64(b.N) {
		b.Fatalf("outcomes %v", st.ByOutcome)
	}
}

func BenchmarkBareHTTP(b *testing.B) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"resultCode":"0100000","resultDesc":{}}`))
	})}
	var lc net.ListenConfig
	ln, err := lc.Listen(b.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	benchLoop(b, "http://"+ln.Addr().String(), testCreds)
}

func benchLoop(b *testing.B, base string, creds authv2.Credentials) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	c := &client{hc: &http.Client{Transport: tr}, base: base, creds: creds, headers: authv2.HeadersHostOnly, layout: authv2.LayoutSeconds}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			k := extract.Key{CCID: 1, VDN: 1, CallID: "1659513159000-" + strconv.Itoa(i)}
			r, err := c.post(b.Context(), PathQuery, keyBody(k))
			if err != nil || r.status != 200 {
				b.Errorf("status %d err %v", r.status, err)
				return
			}
		}
	})
}
