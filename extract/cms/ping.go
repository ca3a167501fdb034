package cms

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// pingBody is the JSON object posted to the health check, which echoes it.
var pingBody = []byte(`{"ping":"cms-etl"}`)

// PingResult is the outcome of a pre-flight check of address, TLS and
// credentials.
type PingResult struct {
	URL               string // scheme://host:port pinged
	Reachable         bool   // the server answered (or presented a certificate)
	TLSVerified       bool   // the answer came over TLS with a verified certificate
	SignatureAccepted bool   // the signed request got a 2xx answer
	// ExpectsHTTPS: the URL is http:// but the server speaks TLS there, so
	// the plain request got an error page (HTTP 400) or no answer, and the
	// signature was never checked.
	ExpectsHTTPS bool
	HTTPStatus   int    // 0 when no response
	Status       string // "status" of the body, "UP" when healthy
	// Err is what failed: transport, TLS verification or a non-2xx status.
	// It stays nil when the only shortfall is plain http or disabled
	// verification, which TLSVerified (false) and String report.
	Err error

	insecure bool // verification disabled by configuration
}

// OK reports that the server is reachable, verified over TLS, and accepts
// the signature: the run can start.
func (p PingResult) OK() bool {
	return p.Reachable && p.TLSVerified && p.SignatureAccepted
}

// String is one line for operators, e.g.
// "cms ping https://h:p: reachable yes, tls verified yes, signature accepted yes (HTTP 200, status UP)".
func (p PingResult) String() string {
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var b strings.Builder
	b.WriteString("cms ping ")
	b.WriteString(p.URL)
	if p.ExpectsHTTPS {
		b.WriteString(": reachable yes, but the server expects HTTPS: use --api-url ")
		b.WriteString("https://" + strings.TrimPrefix(p.URL, "http://"))
		return b.String()
	}
	b.WriteString(": reachable ")
	b.WriteString(yn(p.Reachable))
	switch {
	case strings.HasPrefix(p.URL, "http://"):
		b.WriteString(", tls: not used")
	case p.insecure:
		b.WriteString(", tls verified no (verification disabled)")
	default:
		b.WriteString(", tls verified ")
		b.WriteString(yn(p.TLSVerified))
	}
	b.WriteString(", signature accepted ")
	b.WriteString(yn(p.SignatureAccepted))
	if p.HTTPStatus != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(p.HTTPStatus))
		if p.Status != "" {
			b.WriteString(", status ")
			b.WriteString(oneLine(p.Status))
		}
		b.WriteString(")")
	} else {
		b.WriteString(" (no HTTP response)")
	}
	if p.Err != nil {
		b.WriteString(": ")
		b.WriteString(oneLine(p.Err.Error()))
	}
	return b.String()
}

// oneLine keeps a log line a single line whatever a server or error says.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Ping posts a small signed JSON object to PingPath, once, without retries
// or the limiter, and reports what worked.
func (c *Client) Ping(ctx context.Context) PingResult {
	p := PingResult{URL: c.baseURL, insecure: c.cfg.InsecureSkipVerify}
	bp := c.getBuf()
	defer c.putBuf(bp)
	ex := c.exchange(ctx, c.urls[PingPath], pingBody, bp)
	p.HTTPStatus = ex.status
	switch {
	case ex.status != 0:
		p.Reachable = true
		p.TLSVerified = ex.tls
		p.SignatureAccepted = ex.status >= 200 && ex.status <= 299
		var status envValue
		s := objectScanner{b: *bp, invalid: errInvalidJSON}
		statusIndex := func(key []byte) int {
			if strings.EqualFold(string(key), "status") {
				return 0
			}
			return -1
		}
		if ex.err == nil && s.object(statusIndex, func(_, kind int, tok []byte, esc bool) {
			status = envValue{kind: kind, tok: tok, esc: esc}
		}) == nil {
			p.Status, _ = scalarText(status)
		}
		switch {
		case !p.SignatureAccepted:
			p.Err = errors.New(failureMessage(ex.status, Response{}, nil))
		case ex.err != nil:
			p.Err = ex.err
		}
	case ex.err != nil && isTLSVerifyError(ex.err):
		// The server presented a certificate, so the address is right.
		p.Reachable = true
		p.Err = errors.New(failureMessage(0, Response{}, ex.err))
	default:
		p.Err = ex.err
	}
	if strings.HasPrefix(p.URL, "http://") && (p.HTTPStatus == 400 || p.HTTPStatus == 0) && c.speaksTLS(ctx) {
		p.Reachable, p.SignatureAccepted, p.ExpectsHTTPS = true, false, true
		p.Err = errors.New("the server expects HTTPS at this address")
	}
	return p
}

// speaksTLS reports whether the server at the http:// base URL completes a
// TLS handshake. It sends nothing else, so the unverified handshake reveals
// nothing: it only tells a wrong scheme apart from a broken server.
func (c *Client) speaksTLS(ctx context.Context) bool {
	u, err := url.Parse(c.baseURL)
	if err != nil {
		return false
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	// Unverified on purpose: a probe, see above.
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}
