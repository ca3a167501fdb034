package cmssim

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

// Paths served.
const (
	PathQuery = "/rest/cmsapp/v1/openapi/calldata/querybasiccallinfo"
	PathPing  = "/rest/cmsapp/v1/ping"
	PathStats = "/_sim/stats" // GET, no auth, not counted
)

// Outcome names, the keys of Stats.ByOutcome.
const (
	OutcomeOK             = "ok"              // success with a result object
	OutcomeNoData         = "no_data"         // success code, no result object
	OutcomePermanent      = "permanent"       // 0101002, 0100002, 0101003 or 0100003 with a text resultDesc
	OutcomeBadRequest     = "bad_request"     // invalid body: 0100002 (or 413 when too large)
	OutcomeUnauthorized   = "unauthorized"    // HTTP 401
	OutcomeThrottled      = "throttled"       // HTTP 429 with Retry-After
	OutcomeServerError    = "server_error"    // fault "5xx"
	OutcomeUnavailable    = "unavailable"     // fault "503"
	OutcomeHang           = "hang"            // fault "hang"
	OutcomeDrop           = "drop"            // fault "drop"
	OutcomeTruncated      = "truncated"       // fault "truncated"
	OutcomeGenericFailure = "generic_failure" // fault "0100001"
	OutcomeUnknownError   = "unknown_error"   // fault "0100999"
	OutcomePing           = "ping"            // answered ping
	OutcomeNotFound       = "not_found"       // unknown path (404) or wrong method (405)
	OutcomeCanceled       = "canceled"        // client gone before the answer (during latency or body read)
	OutcomeDown           = "down"            // HTTP 502 while the server is down (SetDown)
)

type outcome int

const (
	outOK outcome = iota
	outNoData
	outPermanent
	outBadRequest
	outUnauthorized
	outThrottled
	outServerError
	outUnavailable
	outHang
	outDrop
	outTruncated
	outGenericFailure
	outUnknownError
	outPing
	outNotFound
	outCanceled
	outDown
	numOutcomes
)

var outcomeNames = [numOutcomes]string{OutcomeOK, OutcomeNoData, OutcomePermanent, OutcomeBadRequest,
	OutcomeUnauthorized, OutcomeThrottled, OutcomeServerError, OutcomeUnavailable, OutcomeHang, OutcomeDrop, OutcomeTruncated,
	OutcomeGenericFailure, OutcomeUnknownError, OutcomePing, OutcomeNotFound, OutcomeCanceled, OutcomeDown}

// Stats are the simulator's counters since start.
type Stats struct {
	// Requests counts every request to the API paths (not /_sim/stats).
	Requests int64 `json:"requests"`
	// ByOutcome counts requests per Outcome* name; every name is present.
	ByOutcome map[string]int64 `json:"by_outcome"`
	// PeakPerSecond is the most requests started within one wall-clock second.
	PeakPerSecond int64 `json:"peak_per_second"`
	// PeakConcurrency is the most requests in progress at once.
	PeakConcurrency int64 `json:"peak_concurrency"`
	// InFlight is the number of requests in progress now.
	InFlight int64 `json:"in_flight"`
	// CallIDRequests counts querybasiccallinfo requests that passed auth and
	// validation, keyed "ccId/vdn/callId" (extract.Key.String). Only with
	// Config.TrackCallIDs.
	CallIDRequests map[string]int64 `json:"call_id_requests,omitempty"`

	// ByEndpoint counts requests per endpoint (Endpoint* names), whatever
	// their outcome; every name is present.
	ByEndpoint map[string]int64 `json:"by_endpoint"`
	// Live, QueryCalls and CallDetail count the answers of the call
	// schedule's endpoints (endpoints.go).
	Live       LiveStats       `json:"live"`
	QueryCalls QueryCallsStats `json:"querycalls"`
	CallDetail CallDetailStats `json:"querycalldetailbyid"`
}

// Server is a running simulator.
type Server struct {
	cfg        Config
	log        zerolog.Logger
	srv        *http.Server
	url        string
	caFile     string
	removeCA   bool
	limiter    *rate.Limiter
	retryAfter []string

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	serveDone chan struct{}
	stopAfter func() bool

	counts   [numOutcomes]atomic.Int64
	down     atomic.Bool // SetDown
	inflight atomic.Int64
	peakConc atomic.Int64
	window   atomic.Uint64 // unix second << 32 | requests started in it
	peakSec  atomic.Int64

	attemptsMu sync.Mutex
	attempts   map[string]int // fault-selected keys only

	trackMu sync.Mutex
	track   map[string]int64

	secondsMu sync.Mutex
	seconds   map[int64]*Second

	calls *callsState // endpoints.go

	bufs sync.Pool // *[]byte
}

// Start validates cfg, listens and serves until Close or until ctx ends.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cmssim listen %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		closing:    make(chan struct{}),
		serveDone:  make(chan struct{}),
		attempts:   map[string]int{},
		retryAfter: []string{strconv.FormatInt(int64((cfg.RetryAfter+time.Second-1)/time.Second), 10)},
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	s.calls = newCallsState(cfg)
	if cfg.TrackCallIDs {
		s.track = map[string]int64{}
	}
	if cfg.TrackSeconds {
		s.seconds = map[int64]*Second{}
	}
	if cfg.RateLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst)
	}
	scheme := "http"
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		cert, pemBytes, err := selfSigned(host, time.Now())
		if err == nil {
			s.caFile, s.removeCA, err = writeCert(cfg.CertFile, pemBytes)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("cmssim tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"}, // HTTP/1.1 only, like the real server; "drop" hijacks
		})
		scheme = "https"
	}
	s.url = scheme + "://" + reachable(ln.Addr())
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(debugWriter{s.log}, "", 0),
	}
	go func() {
		defer close(s.serveDone)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("cmssim serve")
		}
	}()
	s.stopAfter = context.AfterFunc(ctx, func() { s.Close() })
	s.log.Info().Str("url", s.url).Str("ca_file", s.caFile).Str("ak", cfg.Credentials.AK).
		Float64("rate_limit", cfg.RateLimit).Dur("latency", cfg.Latency).Msg("cmssim listening")
	return s, nil
}

// reachable turns the listen address into one a local client can dial.
func reachable(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// debugWriter sends net/http's own error log (TLS handshake failures of
// clients that distrust the certificate, etc.) to the logger at debug level.
type debugWriter struct{ l zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// SetDown takes the whole API down (true) or brings it back (false): while
// down, every API request, ping included, gets HTTP 502 from the "load
// balancer", as when CC-CMS has no backend up. For outage tests and demos.
func (s *Server) SetDown(down bool) {
	s.down.Store(down)
	s.log.Info().Bool("down", down).Msg("cmssim: API availability changed")
}

// URL is the base URL, e.g. "https://127.0.0.1:28443".
func (s *Server) URL() string { return s.url }

// CAFile is the path of the certificate PEM to trust, "" without TLS.
func (s *Server) CAFile() string { return s.caFile }

// Close stops the server at once (hanging and sleeping requests end) and
// removes a temporary certificate file. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopAfter()
		close(s.closing)
		err := s.srv.Close()
		<-s.serveDone
		if s.removeCA {
			if rmErr := os.Remove(s.caFile); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove certificate file: %w", rmErr))
			}
		}
		if err != nil {
			s.closeErr = fmt.Errorf("cmssim close: %w", err)
		}
	})
	return s.closeErr
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		ByOutcome:       make(map[string]int64, numOutcomes),
		PeakPerSecond:   s.peakSec.Load(),
		PeakConcurrency: s.peakConc.Load(),
		InFlight:        s.inflight.Load(),
	}
	for i := range s.counts {
		n := s.counts[i].Load()
		st.ByOutcome[outcomeNames[i]] = n
		st.Requests += n
	}
	if s.track != nil {
		s.trackMu.Lock()
		st.CallIDRequests = make(map[string]int64, len(s.track))
		for k, v := range s.track {
			st.CallIDRequests[k] = v
		}
		s.trackMu.Unlock()
	}
	s.calls.fill(&st)
	return st
}

// Second counts the API requests that started in one wall-clock second.
type Second struct {
	Unix      int64 `json:"unix"`
	Requests  int64 `json:"requests"`
	Throttled int64 `json:"throttled"` // answered 429
}

// Accepted is the requests of the second that passed the rate limit.
func (s Second) Accepted() int64 { return s.Requests - s.Throttled }

// Seconds returns the per-second counts in time order (Config.TrackSeconds;
// nil otherwise). Seconds without a request are absent.
func (s *Server) Seconds() []Second {
	if s.seconds == nil {
		return nil
	}
	s.secondsMu.Lock()
	out := make([]Second, 0, len(s.seconds))
	for _, v := range s.seconds {
		out = append(out, *v)
	}
	s.secondsMu.Unlock()
	slices.SortFunc(out, func(a, b Second) int { return cmp.Compare(a.Unix, b.Unix) })
	return out
}

// countSecond adds a request (and whether it was throttled) to its second.
func (s *Server) countSecond(throttled bool) {
	if s.seconds == nil {
		return
	}
	now := time.Now().Unix()
	s.secondsMu.Lock()
	sec := s.seconds[now]
	if sec == nil {
		sec = &Second{Unix: now}
		s.seconds[now] = sec
	}
	sec.Requests++
	if throttled {
		sec.Throttled++
	}
	s.secondsMu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathQuery:
		s.api(w, r, epQuery)
	case PathPing:
		s.api(w, r, epPing)
	case PathQueryCalls:
		s.api(w, r, epQueryCalls)
	case PathCallDetail:
		s.api(w, r, epCallDetail)
	case PathStats:
		s.serveStats(w, r)
	default:
		s.enter()
		defer s.leave()
		s.counts[outNotFound].Add(1)
		http.NotFound(w, r)
	}
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b, err := json.Marshal(s.Stats())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = jsonCT
	w.Write(b)
}

// enter counts a request as started: concurrency and the per-second window.
func (s *Server) enter() {
	storeMax(&s.peakConc, s.inflight.Add(1))
	sec := uint64(time.Now().Unix()) & 0xffffffff
	for {
		old := s.window.Load()
		next := sec<<32 | 1
		if cur := old >> 32; cur >= sec { // same second, or a late starter from the previous one
			next = old + 1
		}
		if s.window.CompareAndSwap(old, next) {
			storeMax(&s.peakSec, int64(next&0xffffffff))
			return
		}
	}
}

func (s *Server) leave() { s.inflight.Add(-1) }

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

var (
	jsonCT = []string{"application/json;charset=UTF-8"}
	htmlCT = []string{"text/html"}
)

func (s *Server) api(w http.ResponseWriter, r *http.Request, ep endpoint) {
	s.enter()
	defer s.leave()
	s.calls.byEndpoint[ep].Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.counts[outNotFound].Add(1)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.down.Load() {
		// The load balancer in front of a CC-CMS with no backend up.
		s.counts[outDown].Add(1)
		http.Error(w, "502 Bad Gateway: no backend available", http.StatusBadGateway)
		return
	}
	throttled := s.limiter != nil && !s.limiter.Allow()
	s.countSecond(throttled)
	if throttled {
		s.counts[outThrottled].Add(1)
		w.Header()["Retry-After"] = s.retryAfter
		w.Header()["Content-Type"] = jsonCT
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"message":"too many requests"}`)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	body, err := readBody(r, (*bp)[:0], s.cfg.MaxBodyBytes)
	*bp = body[:0]
	if errors.Is(err, errTooLarge) {
		s.counts[outBadRequest].Add(1)
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		s.counts[outCanceled].Add(1)
		panic(http.ErrAbortHandler)
	}
	if err := s.verify(r, body); err != nil {
		s.counts[outUnauthorized].Add(1)
		s.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("cmssim auth failed")
		w.Header()["Content-Type"] = jsonCT
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"message":"authentication failed"}`)
		return
	}
	if !s.delay(r.Context()) {
		s.counts[outCanceled].Add(1)
		panic(http.ErrAbortHandler) // returning would send an empty 200 on a live connection
	}
	switch ep {
	case epPing:
		s.ping(w, body)
		return
	case epQueryCalls:
		s.queryCalls(w, r, body) // discovery.go
		return
	case epCallDetail:
		s.callDetail(w, r, body) // cdr.go
		return
	}
	key, err := parseKey(body)
	if err != nil {
		s.counts[outBadRequest].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, EnvelopeNew, codeText{"0100002", "Invalid parameter: " + err.Error()}))
		return
	}
	if s.track != nil {
		ks := key.String()
		s.trackMu.Lock()
		s.track[ks]++
		s.trackMu.Unlock()
	}
	h := keyHash(s.cfg.Seed, key)
	plan := planFor(s.cfg, h)
	env := envelopeFor(h)
	if plan.Fault != "" && s.faultAttempt(key) {
		s.fault(w, r, plan.Fault, h, env, key)
		return
	}
	out := (*bp)[:0]
	switch plan.Outcome {
	case OutcomePermanent:
		s.counts[outPermanent].Add(1)
		out = appendFailure(out, env, permanentCode(plan.Code))
	case OutcomeNoData:
		s.counts[outNoData].Add(1)
		out = appendNoDataEnvelope(out, env, plan.NoDataForm)
	default:
		if s.calls.sched != nil { // lifetime.go: data only while the call is live
			out = s.appendLive(out, env, h, key)
			break
		}
		s.counts[outOK].Add(1)
		var g gen
		out = appendDataEnvelope(out, env, h, key, &g)
	}
	*bp = out[:0]
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, body []byte) {
	hd := w.Header()
	hd["Content-Type"] = jsonCT
	hd["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

var errTooLarge = errors.New("request body too large")

// readBody reads at most limit bytes into buf.
func readBody(r *http.Request, buf []byte, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return buf, errTooLarge
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("read body: %w", err)
		}
	}
}

// verify checks the auth-v2 signature against the request as received.
func (s *Server) verify(r *http.Request, body []byte) error {
	auth := r.Header["Authorization"]
	if len(auth) != 1 {
		return errors.New("no authorization header")
	}
	p, err := authv2.Parse(auth[0])
	if err != nil {
		return err
	}
	headers := make(map[string]string, 4)
	for n := range strings.SplitSeq(p.SignedHeaders, ";") {
		switch n {
		case "host":
			headers[n] = r.Host
		case "content-length":
			if v := r.Header["Content-Length"]; len(v) > 0 {
				headers[n] = v[0]
			} else if r.ContentLength >= 0 {
				headers[n] = strconv.FormatInt(r.ContentLength, 10)
			}
		default:
			if v := r.Header[textproto.CanonicalMIMEHeaderKey(n)]; len(v) > 0 {
				headers[n] = v[0]
			}
		}
	}
	return authv2.Verify(s.cfg.Credentials, auth[0], authv2.Request{
		Method:  r.Method,
		Path:    r.URL.Path,
		Query:   r.URL.RawQuery,
		Headers: headers,
		Body:    body,
	})
}

// delay sleeps the configured latency; false when the client or the server
// went away first.
func (s *Server) delay(ctx context.Context) bool {
	d := s.cfg.Latency
	if s.cfg.LatencyJitter > 0 {
		d += rand.N(s.cfg.LatencyJitter)
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

func (s *Server) ping(w http.ResponseWriter, body []byte) {
	req := bytes.TrimSpace(body)
	if len(req) == 0 || req[0] != '{' || !json.Valid(req) {
		s.counts[outBadRequest].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, EnvelopeNew, codeText{"0100002", "Invalid parameter: the body must be a JSON object."}))
		return
	}
	s.counts[outPing].Add(1)
	out := make([]byte, 0, len(req)+32)
	out = append(out, `{"request":`...)
	out = append(out, req...)
	out = append(out, `,"status":"UP"}`...)
	s.writeJSON(w, http.StatusOK, out)
}

// parseKey decodes and validates a querybasiccallinfo body. Numbers must be
// JSON integers and callId a string, as documented.
func parseKey(body []byte) (extract.Key, error) {
	var in struct {
		CCID   *int64  `json:"ccId"`
		VDN    *int64  `json:"vdn"`
		CallID *string `json:"callId"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return extract.Key{}, fmt.Errorf("body is not a valid JSON object: %w", err)
	}
	switch {
	case in.CCID == nil:
		return extract.Key{}, errors.New("ccId is required")
	case in.VDN == nil:
		return extract.Key{}, errors.New("vdn is required")
	case in.CallID == nil:
		return extract.Key{}, errors.New("callId is required")
	case int64(int(*in.CCID)) != *in.CCID || int64(int(*in.VDN)) != *in.VDN:
		return extract.Key{}, errors.New("ccId or vdn out of range")
	}
	// The ranges themselves are extract.Key.Validate's to judge.
	k := extract.Key{CCID: int(*in.CCID), VDN: int(*in.VDN), CallID: *in.CallID}
	if err := k.Validate(); err != nil {
		return extract.Key{}, err
	}
	return k, nil
}

// faultAttempt counts an attempt of a fault-selected key and reports whether
// it still fails.
func (s *Server) faultAttempt(k extract.Key) bool {
	ks := k.String()
	s.attemptsMu.Lock()
	n := s.attempts[ks] + 1
	s.attempts[ks] = n
	s.attemptsMu.Unlock()
	return n <= s.cfg.TransientAttempts
}

var gatewayStatuses = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusInternalServerError}

func (s *Server) fault(w http.ResponseWriter, r *http.Request, kind string, h uint64, env string, key extract.Key) {
	switch kind {
	case FaultServerError:
		s.counts[outServerError].Add(1)
		status := gatewayStatuses[mix(h^saltStatus)%uint64(len(gatewayStatuses))]
		w.Header()["Content-Type"] = htmlCT
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><head><title>%[1]d %[2]s</title></head><body><center><h1>%[1]d %[2]s</h1></center></body></html>\n",
			status, http.StatusText(status))
	case FaultUnavailable:
		s.counts[outUnavailable].Add(1)
		w.Header()["Content-Type"] = htmlCT
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<html><head><title>503 Service Unavailable</title></head><body><center><h1>503 Service Unavailable</h1></center></body></html>\n")
	case FaultHang:
		s.counts[outHang].Add(1)
		t := time.NewTimer(s.cfg.HangMax)
		defer t.Stop()
		select {
		case <-t.C:
			w.Header()["Content-Type"] = htmlCT
			w.WriteHeader(http.StatusGatewayTimeout)
			io.WriteString(w, "<html><body><h1>504 Gateway Time-out</h1></body></html>\n")
		case <-r.Context().Done():
			panic(http.ErrAbortHandler)
		case <-s.closing:
			panic(http.ErrAbortHandler) // returning would send an empty 200 before the connection closes
		}
	case FaultDrop:
		s.counts[outDrop].Add(1)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler) // aborts the stream without a response
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		conn.Close()
	case FaultTruncated:
		s.counts[outTruncated].Add(1)
		var g gen
		full := appendDataEnvelope(nil, env, h, key, &g)
		s.writeJSON(w, http.StatusOK, full[:len(full)/2])
	case FaultGenericFailure:
		s.counts[outGenericFailure].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, env, genericFailure))
	case FaultUnknownError:
		s.counts[outUnknownError].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, env, unknownError))
	}
}
