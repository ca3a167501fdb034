// Package authv2 implements the CC-CMS "C2" AK/SK request signature
// (cms-api.md section 2), for signing requests and for verifying them in the
// simulator.
package authv2

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Timestamp layouts. Huawei's demo uses seconds; third-party CEC ports use
// milliseconds. Which one a live server accepts is not documented.
const (
	LayoutSeconds = "2006-01-02T15:04:05Z"
	LayoutMillis  = "2006-01-02T15:04:05.000Z"
)

// Common signed-header sets.
var (
	HeadersDefault  = []string{"content-length", "content-type", "host"}
	HeadersHostOnly = []string{"host"}
)

// Request is what the signature covers. Headers holds the values of the
// signed headers keyed by lowercase name; Host must be the host exactly as
// sent, port included.
type Request struct {
	Method  string
	Path    string
	Query   string // raw query without '?', empty when none
	Headers map[string]string
	Body    []byte
}

// Credentials are the access key and secret key. String never prints the SK.
type Credentials struct {
	AK string
	SK string
}

func (c Credentials) String() string { return "authv2.Credentials{AK:" + c.AK + ", SK:<redacted>}" }

// GoString keeps %#v from printing the SK too.
func (c Credentials) GoString() string { return c.String() }

// SignedHeaders normalises a header-name list: lowercase, sorted, deduplicated,
// joined with ';'.
func SignedHeaders(names []string) string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ";")
}

// SigningKey is lowercase hex of HMAC-SHA256(SK, authStringPrefix).
func SigningKey(sk, authStringPrefix string) string {
	return hexHMAC([]byte(sk), authStringPrefix)
}

// Sign returns the Authorization header value for r at timestamp ts (already
// formatted). signedHeaders is a normalised list as returned by SignedHeaders.
func Sign(c Credentials, ts, signedHeaders string, r Request) (string, error) {
	canonical, err := CanonicalRequest(signedHeaders, r)
	if err != nil {
		return "", err
	}
	prefix := "auth-v2/" + c.AK + "/" + ts + "/" + signedHeaders
	key := SigningKey(c.SK, prefix)
	return prefix + "/" + hexHMAC([]byte(key), canonical), nil
}

// CanonicalRequest builds the string that is signed.
func CanonicalRequest(signedHeaders string, r Request) (string, error) {
	var b strings.Builder
	b.Grow(len(r.Path) + 3*len(r.Body) + 256)
	b.WriteString(strings.ToUpper(r.Method))
	b.WriteByte('\n')
	b.WriteString(r.Path)
	b.WriteByte('\n')
	if r.Query != "" {
		b.WriteString(canonicalQuery(r.Query))
		b.WriteByte('\n')
	}
	b.WriteString(signedHeaders)
	b.WriteByte('\n')
	names := strings.Split(signedHeaders, ";")
	lines := make([]string, 0, len(names))
	for _, n := range names {
		if n == "" {
			continue
		}
		v, ok := r.Headers[n]
		if !ok {
			return "", fmt.Errorf("signed header %q has no value", n)
		}
		lines = append(lines, Normalize(n)+":"+Normalize(strings.TrimSpace(v)))
	}
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteByte('\n')
	if len(r.Body) > 0 {
		b.Write(AppendNormalized(make([]byte, 0, 3*len(r.Body)), r.Body))
	}
	return b.String(), nil
}

func canonicalQuery(q string) string {
	parts := strings.Split(q, "&")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		out = append(out, Normalize(k)+"="+Normalize(v))
	}
	sort.Strings(out)
	return strings.Join(out, "&")
}

const upperHex = "0123456789ABCDEF"

func unreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// Normalize percent-encodes every byte outside A-Z a-z 0-9 - . _ ~ as %XX
// (uppercase hex). Unlike url.QueryEscape it encodes space as %20 and never
// leaves '+' or '/' alone.
func Normalize(s string) string {
	return string(AppendNormalized(make([]byte, 0, len(s)*3), []byte(s)))
}

// AppendNormalized appends Normalize(s) to dst, for signers that reuse
// their buffers.
func AppendNormalized(dst, s []byte) []byte {
	for _, c := range s {
		if unreserved(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&0x0f])
	}
	return dst
}

func hexHMAC(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// Parsed is an Authorization header split into its parts.
type Parsed struct {
	AK            string
	Timestamp     string
	SignedHeaders string
	Signature     string
}

// ErrMalformed is returned by Parse for a header that is not auth-v2.
var ErrMalformed = errors.New("malformed auth-v2 authorization header")

// Parse splits "auth-v2/{AK}/{timestamp}/{SignedHeaders}/{signature}".
func Parse(h string) (Parsed, error) {
	parts := strings.Split(h, "/")
	if len(parts) != 5 || parts[0] != "auth-v2" || parts[1] == "" || parts[2] == "" || parts[3] == "" || parts[4] == "" {
		return Parsed{}, ErrMalformed
	}
	return Parsed{AK: parts[1], Timestamp: parts[2], SignedHeaders: parts[3], Signature: parts[4]}, nil
}

// ParseTimestamp accepts either precision.
func ParseTimestamp(ts string) (time.Time, error) {
	if t, err := time.Parse(LayoutMillis, ts); err == nil {
		return t, nil
	}
	return time.Parse(LayoutSeconds, ts)
}

// Verify recomputes the signature of r from the header's own signed-header
// list and timestamp and compares it in constant time.
func Verify(c Credentials, authorization string, r Request) error {
	p, err := Parse(authorization)
	if err != nil {
		return err
	}
	if p.AK != c.AK {
		return errors.New("unknown access key")
	}
	if _, err := ParseTimestamp(p.Timestamp); err != nil {
		return fmt.Errorf("bad timestamp %q", p.Timestamp)
	}
	if SignedHeaders(strings.Split(p.SignedHeaders, ";")) != p.SignedHeaders {
		return errors.New("signed headers not lowercase and sorted")
	}
	want, err := Sign(c, p.Timestamp, p.SignedHeaders, r)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(authorization)) {
		return errors.New("signature mismatch")
	}
	return nil
}
