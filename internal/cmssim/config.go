// Package cmssim is a stand-in CC-CMS server for development, tests, demos
// and benchmarks. It serves querybasiccallinfo and ping with auth-v2
// verification, answers with deterministic plausible records that carry every
// documented quirk of real deployments, and injects configurable latency,
// no-data answers, permanent failures, transient faults and throttling.
// With a call schedule (Config.Calls) it models calls with lifetimes and
// also serves querycalls and querycalldetailbyid for the calls that ended.
package cmssim

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

// Transient fault kinds (Config.TransientKinds).
const (
	FaultServerError    = "5xx"       // HTTP 500/502/503/504 from the "load balancer"
	FaultUnavailable    = "503"       // HTTP 503 without Retry-After: one backend restarting, not throttling
	FaultHang           = "hang"      // no answer until the client gives up (max Config.HangMax)
	FaultDrop           = "drop"      // connection closed without a response
	FaultTruncated      = "truncated" // HTTP 200 with half a JSON body
	FaultGenericFailure = "0100001"   // business code: interface call failed
	FaultUnknownError   = "0100999"   // business code: unknown error
)

// AllFaultKinds lists every transient fault kind, the default of Config.TransientKinds.
var AllFaultKinds = []string{FaultServerError, FaultUnavailable, FaultHang, FaultDrop, FaultTruncated, FaultGenericFailure, FaultUnknownError}

// Config configures the simulator. The zero value plus Credentials is a
// healthy, fast, plain-HTTP server.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:0" (a free port).
	Addr string
	// TLS serves HTTPS with a self-signed certificate generated at start,
	// valid for "localhost", 127.0.0.1, ::1 and the host of Addr.
	TLS bool
	// CertFile is where the certificate PEM is written (clients trust it as
	// their CA). Default: a temporary file removed by Close. Only with TLS.
	CertFile string
	// Credentials are the AK/SK the simulator accepts. Both are required.
	Credentials authv2.Credentials
	// Latency is added to every authenticated request; LatencyJitter adds a
	// uniform random extra in [0, LatencyJitter). Default 0.
	Latency, LatencyJitter time.Duration
	// NoDataShare, PermanentShare and TransientShare are the shares (0..1,
	// summing to at most 1) of call keys that answer "no data", fail
	// permanently, or suffer transient faults before succeeding. Which keys
	// is decided by a hash of the key and Seed, so it is deterministic.
	NoDataShare, PermanentShare, TransientShare float64
	// TransientAttempts is how many attempts of a fault-selected key fail
	// before it succeeds. Default 1.
	TransientAttempts int
	// TransientKinds are the fault kinds to draw from (AllFaultKinds
	// constants). Default AllFaultKinds.
	TransientKinds []string
	// RateLimit is the number of requests per second served before
	// answering 429. Default 0 = unlimited.
	RateLimit float64
	// RateBurst is the token-bucket size of the rate limit. Default
	// max(1, ceil(RateLimit)).
	RateBurst int
	// RetryAfter is the Retry-After sent with 429, rounded up to whole
	// seconds. Default and minimum 1s.
	RetryAfter time.Duration
	// Seed varies the generated data and the selection of failing keys.
	Seed int64
	// TrackCallIDs counts requests per call key (Stats.CallIDRequests).
	// Costs a map entry per distinct key. Default off.
	TrackCallIDs bool
	// TrackSeconds counts requests and 429s per wall-clock second
	// (Server.Seconds), to measure accepted rates over time. Default off.
	TrackSeconds bool
	// HangMax bounds a "hang" fault; after it the server answers 504.
	// Default 2 minutes.
	HangMax time.Duration
	// MaxBodyBytes bounds request bodies; larger ones get HTTP 413.
	// Default 64 KiB.
	MaxBodyBytes int64
	// Logger receives start-up and per-request debug lines. Default: none.
	Logger zerolog.Logger

	// Calls, when set, serves a deterministic schedule of calls (calls.go,
	// schedule.go): querybasiccallinfo answers only while a call is live,
	// querycalls and querycalldetailbyid serve the calls that ended. nil
	// keeps the behaviour without a schedule (every key has data, by hash;
	// the finished-call interfaces know no calls).
	Calls *CallsConfig
}

const (
	defaultAddr         = "127.0.0.1:0"
	defaultHangMax      = 2 * time.Minute
	defaultMaxBodyBytes = 64 << 10
)

// Validate checks the configuration; errors name the bad field. The SK is
// never part of an error.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cmssim config: %s: "+format, append([]any{field}, args...)...))
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			bad("Addr", "%q is not host:port", c.Addr)
		}
	}
	if c.CertFile != "" && !c.TLS {
		bad("CertFile", "set without TLS")
	}
	if c.Credentials.AK == "" {
		bad("Credentials.AK", "is empty")
	}
	if c.Credentials.SK == "" {
		bad("Credentials.SK", "is empty")
	}
	if c.Latency < 0 {
		bad("Latency", "%v is negative", c.Latency)
	}
	if c.LatencyJitter < 0 {
		bad("LatencyJitter", "%v is negative", c.LatencyJitter)
	}
	for _, s := range []struct {
		name string
		v    float64
	}{{"NoDataShare", c.NoDataShare}, {"PermanentShare", c.PermanentShare}, {"TransientShare", c.TransientShare}} {
		if !(s.v >= 0 && s.v <= 1) { // also rejects NaN
			bad(s.name, "%v outside 0..1", s.v)
		}
	}
	if sum := c.NoDataShare + c.PermanentShare + c.TransientShare; sum > 1+1e-9 {
		bad("NoDataShare+PermanentShare+TransientShare", "%v exceeds 1", sum)
	}
	if c.TransientAttempts < 0 {
		bad("TransientAttempts", "%d is negative", c.TransientAttempts)
	}
	for _, k := range c.TransientKinds {
		if !knownFault(k) {
			bad("TransientKinds", "unknown kind %q (want one of %v)", k, AllFaultKinds)
		}
	}
	if !(c.RateLimit >= 0) {
		bad("RateLimit", "%v is negative", c.RateLimit)
	}
	if c.RateBurst < 0 {
		bad("RateBurst", "%d is negative", c.RateBurst)
	}
	if c.RetryAfter < 0 {
		bad("RetryAfter", "%v is negative", c.RetryAfter)
	}
	if c.HangMax < 0 {
		bad("HangMax", "%v is negative", c.HangMax)
	}
	if c.MaxBodyBytes < 0 {
		bad("MaxBodyBytes", "%d is negative", c.MaxBodyBytes)
	}
	if c.Calls != nil {
		errs = append(errs, c.Calls.validate()...)
	}
	return errors.Join(errs...)
}

func knownFault(k string) bool {
	for _, f := range AllFaultKinds {
		if k == f {
			return true
		}
	}
	return false
}

// withDefaults fills the documented defaults.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.TransientAttempts == 0 {
		c.TransientAttempts = 1
	}
	if len(c.TransientKinds) == 0 {
		c.TransientKinds = AllFaultKinds
	}
	if c.RateBurst == 0 {
		c.RateBurst = max(1, int(c.RateLimit+0.999999))
	}
	if c.RetryAfter < time.Second {
		c.RetryAfter = time.Second
	}
	if c.HangMax == 0 {
		c.HangMax = defaultHangMax
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	return c
}
