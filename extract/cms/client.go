// Package cms is the CC-CMS client: one transport (auth-v2 signing, the
// limiter, bounded retries with jittered backoff, classification, body caps,
// a keep-alive TLS connection pool) shared by the endpoints, each declared as
// its path, request body and generated decoder (endpoint.go): the live call
// (querybasiccallinfo), the CDR (querycalldetailbyid) and the listing of
// finished calls (querycalls v2). It is built
// to run a whole night unattended: every failure ends in a class the caller
// can act on, bodies are capped, and secrets never reach logs or errors.
package cms

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// contentType is sent and signed on every request. Package-level header
// slices are shared by all requests: the transport only reads them.
const contentType = "application/json;charset=UTF-8"

var contentTypeValue = []string{contentType}

// Client queries CC-CMS. It is safe for concurrent use by many workers.
type Client struct {
	// cfg is a pointer so that even printing a dereferenced Client shows
	// an address, not the credentials.
	cfg     *Config
	log     zerolog.Logger
	baseURL string              // scheme://host[:port], for messages
	urls    map[string]*url.URL // by path, built once: every endpoint's
	host    string              // Host header exactly as sent, port included
	signer  *signer
	tr      *http.Transport
	// rt sends requests: the transport itself, not an http.Client, because
	// redirects must not be followed (a redirected POST turns into a GET)
	// and the client's per-request bookkeeping costs allocations. The
	// benchmark swaps it for a canned answer.
	rt     http.RoundTripper
	clock  clock
	bufs   sync.Pool // *[]byte for response bodies
	shapes shapes    // request body shapes that worked (Endpoint.Wrapped)
}

// New validates cfg, applies defaults and builds the transport. It reads
// CAFile; it does not contact the server (see Ping).
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, errors.New("api-url: not a URL")
	}
	base := u.Scheme + "://" + u.Host
	c := &Client{
		cfg:     &cfg,
		log:     cfg.Logger,
		baseURL: base,
		urls:    make(map[string]*url.URL, len(paths)),
		host:    u.Host,
		signer:  newSigner(cfg.Credentials, cfg.SignedHeaders, cfg.TimestampLayout, u.Host),
		clock:   realClock,
	}
	for _, p := range paths {
		c.urls[p] = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}
	}
	tlsCfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.TLSServerName,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // explicit, logged opt-in
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file: no PEM certificate in %s", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		c.log.Warn().Str("api_url", base).
			Msg("TLS certificate verification is OFF (insecure-skip-verify): anyone on the path can read and alter CC-CMS traffic")
	}
	if u.Scheme != "https" {
		c.log.Warn().Str("api_url", base).
			Msg("plain http api-url: requests travel unencrypted; use only against a local simulator")
	}
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	c.tr = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: connectTimeout,
		MaxIdleConns:        cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		MaxConnsPerHost:     cfg.MaxConns,
		IdleConnTimeout:     90 * time.Second,
	}
	c.rt = c.tr
	return c, nil
}

// String names the endpoint only. Printing a Client must never print its
// configuration, which holds the SK.
func (c *Client) String() string { return "cms.Client(" + c.baseURL + ")" }

// GoString keeps %#v from dumping the fields.
func (c *Client) GoString() string { return c.String() }

// Close releases idle connections. In-flight queries are not interrupted.
func (c *Client) Close() {
	c.tr.CloseIdleConnections()
}

// failureMessage describes a failed attempt in one line for operators.
func failureMessage(status int, resp Response, err error) string {
	var msg string
	switch {
	case status == http.StatusUnauthorized:
		msg = statusText(status) + ": signature rejected (check the AK and SK, --signed-headers, --timestamp-precision and the clock)"
	case status == http.StatusForbidden:
		msg = statusText(status) + ": access denied (source IP not allowed or locked after bad signatures)"
	case err != nil && status == 0 && isTLSVerifyError(err):
		msg = "TLS verification failed (check ca-file / tls-server-name): " + err.Error()
	case err != nil:
		msg = err.Error()
		if status != 0 {
			msg = statusText(status) + ": " + msg
		}
	case status < 200 || status > 299:
		msg = statusText(status)
	default:
		msg = "result code " + resp.Code
	}
	if resp.Code != "" && (status < 200 || status > 299) {
		msg += ", result code " + resp.Code
	}
	if resp.Message != "" {
		msg += ": " + resp.Message
	}
	return msg
}

// exchanged is what one HTTP exchange produced.
type exchanged struct {
	status        int
	retryAfter    time.Duration // clamped; 0 when absent
	hasRetryAfter bool          // a valid Retry-After header came with the answer
	sent          bool          // the request was written (or answered)
	tls           bool          // the response came over a verified TLS connection
	latency       time.Duration
	at            time.Time
	err           error
}

// exchange signs and posts body to u within one RequestTimeout, reading at
// most MaxBodyBytes of the response into *bp.
func (c *Client) exchange(ctx context.Context, u *url.URL, body []byte, bp *[]byte) exchanged {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	start := c.clock.now()
	ex := exchanged{}
	// Not pooled: the transport may report the write after RoundTrip
	// returned on a cancellation.
	wrote := &sentTracker{}
	wrote.trace.WroteRequest = wrote.wroteRequest
	actx = httptrace.WithClientTrace(actx, &wrote.trace)
	finish := func() exchanged {
		ex.at = c.clock.now()
		ex.latency = ex.at.Sub(start)
		ex.sent = ex.status != 0 || wrote.sent.Load()
		return ex
	}

	// Built by hand rather than with http.NewRequest, which would re-parse
	// the URL on every attempt. The URL is copied: requests must not share
	// mutable state.
	reqURL := *u
	req := (&http.Request{
		Method:     http.MethodPost,
		URL:        &reqURL,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type": contentTypeValue,
			// Signed afresh for every attempt: the timestamp is part of it.
			"Authorization": {c.signer.sign(start, u.Path, body)},
		},
		// A NopCloser over a *bytes.Reader is a body net/http knows to be in
		// memory: it then sends headers and body in one write instead of
		// flushing the headers first (one syscall and packet per request).
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), // the value signed as content-length
		// The transport may resend on a stale keep-alive connection when
		// nothing was written; it needs to rewind the body for that.
		GetBody: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
		Host:    c.host, // the value signed as host
	}).WithContext(actx)

	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		ex.err = fmt.Errorf("post %s: %w", reqURL.Redacted(), err)
		return finish()
	}
	defer resp.Body.Close()
	ex.status = resp.StatusCode
	ex.tls = resp.TLS != nil && !c.cfg.InsecureSkipVerify
	if v := resp.Header["Retry-After"]; len(v) > 0 {
		// An HTTP date counts from when the answer arrived.
		if d, ok := parseRetryAfter(v[0], c.clock.now()); ok {
			ex.retryAfter, ex.hasRetryAfter = min(d, c.cfg.RetryAfterCap), true
		}
	}
	ex.err = readCapped(resp, c.cfg.MaxBodyBytes, bp)
	return finish()
}

// sentTracker records that the transport wrote a request: only such
// attempts count as requests (one cut off while dialing never reached the
// server).
type sentTracker struct {
	sent  atomic.Bool
	trace httptrace.ClientTrace
}

func (s *sentTracker) wroteRequest(info httptrace.WroteRequestInfo) {
	if info.Err == nil { // a request cut off part-way never reached a handler
		s.sent.Store(true)
	}
}

// errBodyTooLarge is returned (wrapped) for a body over MaxBodyBytes.
var errBodyTooLarge = errors.New("response body too large")

// readCapped reads the body into *bp (replacing its contents), never more
// than limit+1 bytes.
func readCapped(resp *http.Response, limit int64, bp *[]byte) error {
	tooLarge := func() error {
		return fmt.Errorf("%w: over %d bytes (max-body-bytes)", errBodyTooLarge, limit)
	}
	if resp.ContentLength > limit {
		return tooLarge()
	}
	b := (*bp)[:0]
	if resp.ContentLength > 0 && int64(cap(b)) < resp.ContentLength+1 {
		// +1 leaves room to see EOF without growing.
		b = make([]byte, 0, resp.ContentLength+1)
	}
	defer func() { *bp = b }()
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
		room := min(int64(cap(b)-len(b)), limit+1-int64(len(b)))
		n, err := resp.Body.Read(b[len(b) : len(b)+int(room)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return tooLarge()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read response body: %w", err)
		}
	}
}

// maxPooledBuf keeps an occasional large body from pinning memory in the pool.
const maxPooledBuf = 64 << 10

func (c *Client) getBuf() *[]byte {
	if b, ok := c.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

func (c *Client) putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	c.bufs.Put(b)
}
