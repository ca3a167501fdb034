package cms

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

// Paths of the endpoints this client calls (cms-api.md sections 1 and 2,
// cms-discovery.md sections 1 and 2).
const (
	QueryPath      = "/rest/cmsapp/v1/openapi/calldata/querybasiccallinfo"
	CallDetailPath = "/rest/cmsapp/v1/openapi/calldata/querycalldetailbyid"
	ListCallsPath  = "/rest/cmsapp/v2/openapi/vdn/querycalls"
	PingPath       = "/rest/cmsapp/v1/ping"
)

// paths are every endpoint's path: New builds their URLs once.
var paths = []string{QueryPath, CallDetailPath, ListCallsPath, PingPath}

// Defaults applied by New to zero-valued Config fields; documented on the
// fields themselves.
const (
	defaultMaxAttempts    = 5
	defaultRequestTimeout = 15 * time.Second
	defaultBackoffBase    = 250 * time.Millisecond
	defaultBackoffCap     = 10 * time.Second
	defaultRetryAfterCap  = 30 * time.Second
	defaultMaxBodyBytes   = 1 << 20
	defaultMaxConns       = 8

	// connectTimeout bounds TCP connect and the TLS handshake separately from
	// RequestTimeout, so a dead address fails fast (Huawei's demo uses 2 s).
	connectTimeout = 5 * time.Second
)

// Limiter paces requests. Every attempt, retries included, waits on it first.
// *rate.Limiter from golang.org/x/time/rate satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// RetryBudget bounds retries across all calls. The client asks it before
// every retry after a transient fault; when it refuses, the call ends
// transient instead of adding load to a struggling API (the next run, or the
// queue's own retry, takes it). Retries after a throttle (429, 503 with
// Retry-After) are not charged: they wait out the server's Retry-After, and
// the limiter has cut the rate they pass through.
type RetryBudget interface {
	TryRetry() bool
}

// Config configures a Client. Zero values mean the documented default. Errors
// from Validate name the field by its command-line spelling (api-url, ...).
type Config struct {
	// BaseURL is scheme://host:port of CC-CMS (or the NSLB in front of it),
	// without a path. https is expected; http:// is accepted for benchmarks
	// against the simulator and logs a warning. Required. (api-url)
	BaseURL string
	// Credentials are the AK/SK pair; both required. The SK is never logged.
	// (ak, CMS_SK or sk-file)
	Credentials authv2.Credentials
	// SignedHeaders lists the headers covered by the signature. Default
	// authv2.HeadersDefault (content-length;content-type;host); Huawei's demo
	// signs authv2.HeadersHostOnly. Only these three names are supported.
	// (signed-headers)
	SignedHeaders []string
	// TimestampLayout is the signature timestamp precision: authv2.LayoutMillis
	// (default) or authv2.LayoutSeconds. (timestamp-precision)
	TimestampLayout string

	// MaxAttempts bounds the attempts per call, the first one included.
	// Default 5. (max-attempts)
	MaxAttempts int
	// RequestTimeout bounds one attempt: connect, send and reading the whole
	// response. Default 15s. (request-timeout)
	RequestTimeout time.Duration
	// BackoffBase and BackoffCap shape the full-jitter backoff between
	// attempts: attempt n (1-based) is followed by a wait drawn uniformly from
	// [0, min(BackoffCap, BackoffBase*2^(n-1))). Defaults 250ms and 10s.
	// (backoff-base, backoff-cap)
	BackoffBase, BackoffCap time.Duration
	// RetryAfterCap clamps a server's Retry-After (seconds or HTTP date),
	// which otherwise replaces the backoff; Attempt.RetryAfter reports the
	// clamped value. Default 30s. (retry-after-cap)
	RetryAfterCap time.Duration
	// MaxBodyBytes caps a response body; a larger one is a transient error and
	// is never read past the cap. Default 1 MiB. (max-body-bytes)
	MaxBodyBytes int64

	// CAFile is a PEM bundle of the CAs to trust instead of the system pool,
	// for private or self-signed CC-CMS certificates. (ca-file)
	CAFile string
	// TLSServerName is the name to verify the certificate against when
	// BaseURL addresses the server by IP. (tls-server-name)
	TLSServerName string
	// InsecureSkipVerify turns certificate verification off. Explicit opt-in
	// only; New logs a warning. (insecure-skip-verify)
	InsecureSkipVerify bool
	// MaxConns sizes the keep-alive pool: at most this many connections to
	// the server, all kept idle between requests. Set it to the worker count.
	// Default 8. (max-conns)
	MaxConns int

	// Limiter, when set, is waited on before every attempt. Nil means no
	// client-side pacing.
	Limiter Limiter
	// RetryBudget, when set, is asked before every retry after a transient
	// fault. Nil means every transient failure is retried up to MaxAttempts.
	RetryBudget RetryBudget
	// DiscardRaw leaves Result.Raw nil, sparing a copy of every result
	// object, for callers that keep only the decoded Record.
	DiscardRaw bool
	// OnAttempt, when set, is called after every attempt (from the calling
	// goroutine, once the retry decision is made), e.g. to count requests
	// and retries or to adapt the rate to throttling.
	OnAttempt func(Attempt)
	// Logger receives warnings at New and debug lines per retry. The zero
	// value discards.
	Logger zerolog.Logger
}

// supportedHeaders are the headers the client can sign: it sets all three on
// every request.
var supportedHeaders = map[string]bool{"content-length": true, "content-type": true, "host": true}

// Validate checks the configuration without touching files or the network.
// Zero values are valid (they select defaults).
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		return errors.New("api-url: is empty")
	case err != nil:
		// url.Parse errors quote the input; it holds no secret (user info is
		// rejected below), but keep the message short.
		return errors.New("api-url: not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("api-url: scheme must be https (or http for benchmarks)")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("api-url: no host")
	case u.User != nil:
		return errors.New("api-url: must not contain user info")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return errors.New("api-url: give only scheme://host:port, without path or query")
	}
	if c.Credentials.AK == "" {
		return errors.New("ak (--ak or CMS_AK): is empty")
	}
	if strings.Contains(c.Credentials.AK, "/") {
		return errors.New("ak (--ak or CMS_AK): must not contain '/'")
	}
	if c.Credentials.SK == "" {
		return errors.New("sk (CMS_SK or --sk-file): is empty")
	}
	if c.SignedHeaders != nil {
		sh := authv2.SignedHeaders(c.SignedHeaders)
		if sh == "" {
			return errors.New("signed-headers: is empty")
		}
		for _, h := range strings.Split(sh, ";") {
			if !supportedHeaders[h] {
				return errors.New("signed-headers: " + h + " is not supported (use content-length, content-type, host)")
			}
		}
	}
	switch c.TimestampLayout {
	case "", authv2.LayoutMillis, authv2.LayoutSeconds:
	default:
		return errors.New("timestamp-precision: must be ms (authv2.LayoutMillis) or s (authv2.LayoutSeconds)")
	}
	switch {
	case c.MaxAttempts < 0:
		return errors.New("max-attempts: must be at least 1")
	case c.RequestTimeout < 0:
		return errors.New("request-timeout: must be positive")
	case c.BackoffBase < 0:
		return errors.New("backoff-base: must be positive")
	case c.BackoffCap < 0:
		return errors.New("backoff-cap: must be positive")
	case c.BackoffBase > 0 && c.BackoffCap > 0 && c.BackoffCap < c.BackoffBase:
		return errors.New("backoff-cap: must not be below backoff-base")
	case c.RetryAfterCap < 0:
		return errors.New("retry-after-cap: must be positive")
	case c.MaxBodyBytes < 0:
		return errors.New("max-body-bytes: must be positive")
	case c.MaxConns < 0:
		return errors.New("max-conns: must be at least 1")
	}
	if u.Scheme == "http" {
		switch {
		case c.CAFile != "":
			return errors.New("ca-file: needs an https api-url")
		case c.TLSServerName != "":
			return errors.New("tls-server-name: needs an https api-url")
		case c.InsecureSkipVerify:
			return errors.New("insecure-skip-verify: needs an https api-url")
		}
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		return errors.New("insecure-skip-verify: contradicts ca-file; drop one")
	}
	return nil
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.SignedHeaders == nil {
		c.SignedHeaders = authv2.HeadersDefault
	}
	if c.TimestampLayout == "" {
		c.TimestampLayout = authv2.LayoutMillis
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = defaultMaxAttempts
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = defaultBackoffBase
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = max(defaultBackoffCap, c.BackoffBase)
	}
	if c.RetryAfterCap == 0 {
		c.RetryAfterCap = defaultRetryAfterCap
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns
	}
	return c
}
