package cms

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

// testSK is distinctive so a leak is easy to find in any output.
const testSK = "sk-SECRET-7f3a9c1e-do-not-log"

var (
	testCreds = authv2.Credentials{AK: "test-ak", SK: testSK}
	testKey   = extract.Key{CCID: 1, VDN: 2, CallID: "1659513159000-546750"}
	// testBody is what testKey must marshal to, byte for byte.
	testBody = `{"ccId":1,"vdn":2,"callId":"1659513159000-546750"}`
)

// seenRequest is what a test server saw.
type seenRequest struct {
	Method, Path, Host, ContentType, Authorization string
	ContentLength                                  int64
	Body                                           []byte
	VerifyErr                                      error
}

// testServer is a real TLS server that checks auth-v2 like CC-CMS: a bad
// signature gets 401; everything else goes to the test's handler.
type testServer struct {
	*httptest.Server
	caFile string

	mu   sync.Mutex
	seen []seenRequest
	n    atomic.Int64
}

// handlerFunc answers the n-th (1-based) authenticated request.
type handlerFunc func(n int, w http.ResponseWriter, r *http.Request)

func newTestServer(t *testing.T, h handlerFunc) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hdr := map[string]string{
			"host":           r.Host,
			"content-type":   r.Header.Get("Content-Type"),
			"content-length": strconv.FormatInt(r.ContentLength, 10),
		}
		verr := authv2.Verify(testCreds, r.Header.Get("Authorization"),
			authv2.Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: hdr, Body: body})
		ts.mu.Lock()
		ts.seen = append(ts.seen, seenRequest{
			Method: r.Method, Path: r.URL.Path, Host: r.Host, ContentType: r.Header.Get("Content-Type"),
			Authorization: r.Header.Get("Authorization"), ContentLength: r.ContentLength, Body: body, VerifyErr: verr,
		})
		ts.mu.Unlock()
		n := int(ts.n.Add(1))
		if verr != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"signature mismatch"}`)
			return
		}
		h(n, w, r)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected in some tests
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ts.caFile = writePEM(t, ts.Certificate())
	return ts
}

func (ts *testServer) requests() []seenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seenRequest(nil), ts.seen...)
}

func writePEM(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// certFor makes a self-signed CA certificate valid only for dnsName (no IP
// SANs), to exercise TLSServerName.
func certFor(t *testing.T, dnsName string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: dnsName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{dnsName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// fakeClock replaces the retry loop's time seams: sleeps return at once and
// advance the clock; jitter always draws its maximum (n-1).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) install(c *Client) {
	c.clock = clock{
		now: func() time.Time {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.now = f.now.Add(time.Millisecond) // distinct timestamps per attempt
			return f.now
		},
		sleep: func(ctx context.Context, d time.Duration) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.sleeps = append(f.sleeps, d)
			f.now = f.now.Add(d)
			return ctx.Err()
		},
		randN: func(n int64) int64 { return n - 1 },
	}
}

func (f *fakeClock) slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// testConfig points a client at ts with fast retries.
func testConfig(ts *testServer) Config {
	return Config{
		BaseURL:        ts.URL,
		Credentials:    testCreds,
		CAFile:         ts.caFile,
		MaxAttempts:    3,
		RequestTimeout: 10 * time.Second,
		BackoffBase:    time.Millisecond,
		BackoffCap:     4 * time.Millisecond,
		MaxConns:       2,
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

const okBody = `{"resultCode":"0100000","resultDesc":{"time":1606115215000,"dsn":1,"callSkill":"defaultAudioSkill","orgiCalledNum":"","mediaBillType":0}}`

// countingLimiter counts waits and can fail them.
type countingLimiter struct {
	n   atomic.Int64
	err error
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.n.Add(1)
	if l.err != nil {
		return l.err
	}
	return ctx.Err()
}

// attemptLog collects OnAttempt reports.
type attemptLog struct {
	mu sync.Mutex
	a  []Attempt
}

func (l *attemptLog) add(a Attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.a = append(l.a, a)
}

func (l *attemptLog) all() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Attempt(nil), l.a...)
}

// loopbackURL swaps the host of an httptest URL for 127.0.0.1 explicitly.
func loopbackURL(t *testing.T, raw string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(raw[len("https://"):])
	if err != nil {
		t.Fatal(err)
	}
	return "https://127.0.0.1:" + port
}
