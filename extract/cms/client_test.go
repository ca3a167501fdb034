package cms

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
)

func TestQueryRequestShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string
		layout  string
		wantSH  string
		tsLen   int // length of the timestamp in the Authorization header
	}{
		{"default", nil, "", "content-length;content-type;host", len(authv2.LayoutMillis)},
		{"host only, seconds", authv2.HeadersHostOnly, authv2.LayoutSeconds, "host", len(authv2.LayoutSeconds)},
		{"mixed case list", []string{"Host", "Content-Type"}, authv2.LayoutMillis, "content-type;host", len(authv2.LayoutMillis)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Two transient failures, then success: three attempts to compare.
			ts := newTestServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n < 3 {
					writeJSON(w, http.StatusServiceUnavailable, `{}`)
					return
				}
				writeJSON(w, http.StatusOK, okBody)
			})
			cfg := testConfig(ts)
			cfg.SignedHeaders, cfg.TimestampLayout = tc.headers, tc.layout
			cfg.BackoffBase, cfg.BackoffCap = 2*time.Second, 4*time.Second // fake clock: no real wait
			c := newTestClient(t, cfg)
			newFakeClock().install(c)

			res := c.Query(t.Context(), testKey)
			if res.Class != ClassOK || res.Attempts != 3 || res.HTTPStatus != 200 {
				t.Fatalf("result = %v after %d attempts (HTTP %d, %s), want ok after 3", res.Class, res.Attempts, res.HTTPStatus, res.Message)
			}
			seen := ts.requests()
			if len(seen) != 3 {
				t.Fatalf("server saw %d requests, want 3", len(seen))
			}
			auths := map[string]bool{}
			for i, s := range seen {
				if s.VerifyErr != nil {
					t.Errorf("attempt %d: signature does not verify: %v", i+1, s.VerifyErr)
				}
				if s.Method != http.MethodPost || s.Path != QueryPath {
					t.Errorf("attempt %d: %s %s", i+1, s.Method, s.Path)
				}
				if s.ContentType != "application/json;charset=UTF-8" {
					t.Errorf("attempt %d: Content-Type %q", i+1, s.ContentType)
				}
				if string(s.Body) != testBody || s.ContentLength != int64(len(testBody)) {
					t.Errorf("attempt %d: body %q (Content-Length %d), want %q", i+1, s.Body, s.ContentLength, testBody)
				}
				if s.Host != strings.TrimPrefix(ts.URL, "https://") {
					t.Errorf("attempt %d: Host %q, want host:port of %s", i+1, s.Host, ts.URL)
				}
				p, err := authv2.Parse(s.Authorization)
				if err != nil {
					t.Fatalf("attempt %d: %v", i+1, err)
				}
				if p.AK != testCreds.AK || p.SignedHeaders != tc.wantSH || len(p.Timestamp) != tc.tsLen {
					t.Errorf("attempt %d: authorization %s, want signed headers %s and a %d-char timestamp", i+1, s.Authorization, tc.wantSH, tc.tsLen)
				}
				auths[s.Authorization] = true
			}
			if len(auths) != 3 {
				t.Errorf("%d distinct signatures over 3 attempts: each attempt must be signed afresh", len(auths))
			}
			if res.Record == nil || res.Record.DSN == nil || *res.Record.DSN != 1 || res.Record.CallSkill == nil || *res.Record.CallSkill != "defaultAudioSkill" {
				t.Errorf("record not decoded: %+v", res.Record)
			}
			if !bytes.Contains(res.Raw, []byte(`"orgiCalledNum":""`)) || res.ResultCode != CodeSuccess {
				t.Errorf("Raw = %s, code %q", res.Raw, res.ResultCode)
			}
			if res.Err != nil || res.FetchedAt.IsZero() {
				t.Errorf("Err = %v, FetchedAt = %v", res.Err, res.FetchedAt)
			}
		})
	}
}

func TestQueryRejectedNeverSent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(int, http.ResponseWriter, *http.Request) { t.Error("request sent") })
	lim := &countingLimiter{}
	cfg := testConfig(ts)
	cfg.Limiter = lim
	c := newTestClient(t, cfg)
	tests := []struct {
		key   extract.Key
		field string
	}{
		{extract.Key{CCID: 0, VDN: 1, CallID: "1-1"}, "ccId"},
		{extract.Key{CCID: 65536, VDN: 1, CallID: "1-1"}, "ccId"},
		{extract.Key{CCID: 1, VDN: 5001, CallID: "1-1"}, "vdn"},
		{extract.Key{CCID: 1, VDN: 1, CallID: ""}, "callId"},
		{extract.Key{CCID: 1, VDN: 1, CallID: `1"}-1`}, "callId"},
		{extract.Key{CCID: 1, VDN: 1, CallID: "123456789012345678901"}, "callId"},
	}
	for _, tc := range tests {
		res := c.Query(t.Context(), tc.key)
		var fe *extract.FieldError
		if res.Class != ClassRejected || res.Attempts != 0 || !errors.As(res.Err, &fe) || fe.Field != tc.field ||
			!strings.Contains(res.Message, tc.field) {
			t.Errorf("Query(%v) = %v, attempts %d, err %v, message %q; want rejected naming %s",
				tc.key, res.Class, res.Attempts, res.Err, res.Message, tc.field)
		}
	}
	if n := ts.n.Load(); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
	if n := lim.n.Load(); n != 0 {
		t.Errorf("limiter waited %d times for rejected keys", n)
	}
}

func TestQueryClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		want     Class
		attempts int
		code     string
		msg      string // substring of Message
	}{
		{"ok", 200, okBody, ClassOK, 1, CodeSuccess, ""},
		{"no data null", 200, `{"resultCode":"0100000","resultDesc":null}`, ClassNoData, 1, CodeSuccess, ""},
		{"no data legacy empty", 200, `{"result":"0","resultDatas":{}}`, ClassNoData, 1, "0", ""},
		{"invalid parameter", 200, `{"resultCode":"0100002","resultDesc":"bad callId"}`, ClassPermanent, 1, "0100002", "bad callId"},
		{"unknown code keeps code and text", 200, `{"resultCode":"0177777","resultDesc":"brand new"}`, ClassPermanent, 1, "0177777", "brand new"},
		{"legacy failure", 200, `{"result":"1","resultDatas":"no such call"}`, ClassPermanent, 1, "1", "no such call"},
		{"generic failure retried", 200, `{"resultCode":"0100001","resultDesc":"try later"}`, ClassTransient, 3, "0100001", "try later"},
		{"unknown error retried", 200, `{"resultCode":"0100999","resultDesc":"oops"}`, ClassTransient, 3, "0100999", "oops"},
		{"malformed body retried", 200, `{"resultCode":"0100000","resultDesc":{"dsn":`, ClassTransient, 3, "", "malformed"},
		{"empty body retried", 200, ``, ClassTransient, 3, "", "empty body"},
		{"html body retried", 200, `<html>maintenance</html>`, ClassTransient, 3, "", "malformed"},
		{"500 retried", 500, `oops`, ClassTransient, 3, "", "HTTP 500"},
		{"502 retried", 502, ``, ClassTransient, 3, "", "HTTP 502"},
		{"503 retried", 503, `{"resultCode":"0100999","resultDesc":"busy"}`, ClassTransient, 3, "0100999", "busy"},
		{"429 retried", 429, ``, ClassTransient, 3, "", "HTTP 429"},
		{"401 fatal at once", 401, `{}`, ClassFatal, 1, "", "signature rejected"},
		{"403 fatal at once", 403, `forbidden`, ClassFatal, 1, "", "HTTP 403"},
		{"404 permanent", 404, `not found`, ClassPermanent, 1, "", "HTTP 404"},
		{"400 permanent", 400, `{"resultCode":"0100002","resultDesc":"bad"}`, ClassPermanent, 1, "0100002", "HTTP 400"},
		{"302 not followed", 302, ``, ClassPermanent, 1, "", "HTTP 302"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				writeJSON(w, tc.status, tc.body)
			})
			log := &attemptLog{}
			cfg := testConfig(ts)
			cfg.OnAttempt = log.add
			c := newTestClient(t, cfg)
			newFakeClock().install(c)
			res := c.Query(t.Context(), testKey)
			if res.Class != tc.want || res.Attempts != tc.attempts || int(ts.n.Load()) != tc.attempts {
				t.Fatalf("class %v after %d attempts (%d requests), want %v after %d; message %q",
					res.Class, res.Attempts, ts.n.Load(), tc.want, tc.attempts, res.Message)
			}
			if res.ResultCode != tc.code || !strings.Contains(res.Message, tc.msg) || res.HTTPStatus != tc.status {
				t.Errorf("code %q message %q status %d; want code %q, message containing %q, status %d",
					res.ResultCode, res.Message, res.HTTPStatus, tc.code, tc.msg, tc.status)
			}
			httpLevel := tc.want == ClassPermanent && tc.status != 200
			if (res.Err != nil) != (tc.want == ClassTransient || tc.want == ClassFatal || httpLevel) {
				t.Errorf("Err = %v for class %v", res.Err, res.Class)
			}
			var se *StatusError
			if errors.As(res.Err, &se) != httpLevel || (httpLevel && (se.Status != tc.status || se.URL != ts.URL+QueryPath)) {
				t.Errorf("Err = %v, want a *StatusError naming %d and %s only for an HTTP-level permanent failure", res.Err, tc.status, ts.URL+QueryPath)
			}
			if (res.Record != nil) != (tc.want == ClassOK) || (res.Raw != nil) != (tc.want == ClassOK) {
				t.Errorf("Record/Raw set = %v/%v for class %v", res.Record != nil, res.Raw != nil, res.Class)
			}
			atts := log.all()
			if len(atts) != tc.attempts {
				t.Fatalf("OnAttempt called %d times, want %d", len(atts), tc.attempts)
			}
			for i, a := range atts {
				if a.Number != i+1 || a.HTTPStatus != tc.status || a.Key != testKey || !a.Sent || a.Canceled {
					t.Errorf("attempt report %d = %+v", i, a)
				}
				if a.Retried != (i < len(atts)-1) {
					t.Errorf("attempt %d: Retried %v", i+1, a.Retried)
				}
				if a.Throttle != (tc.status == 429) {
					t.Errorf("attempt %d: Throttle %v for HTTP %d without Retry-After", i+1, a.Throttle, tc.status)
				}
			}
			if last := atts[len(atts)-1]; last.Class != tc.want {
				t.Errorf("last attempt class %v, want %v", last.Class, tc.want)
			}
		})
	}
}

// DiscardRaw keeps the decoded record but not a copy of the object; the
// record must not alias the pooled response buffer, which the next request
// overwrites.
func TestDiscardRaw(t *testing.T) {
	t.Parallel()
	bodies := []string{
		`{"resultCode":"0100000","resultDesc":{"callSkill":"first","dsn":1}}`,
		`{"resultCode":"0100000","resultDesc":{"callSkill":"XXXXXXXX","dsn":2}}`,
	}
	ts := newTestServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, bodies[(n-1)%len(bodies)])
	})
	for _, discard := range []bool{false, true} {
		cfg := testConfig(ts)
		cfg.DiscardRaw = discard
		cfg.MaxConns = 1
		c := newTestClient(t, cfg)
		first := c.Query(t.Context(), testKey)
		second := c.Query(t.Context(), testKey)
		if first.Class != ClassOK || second.Class != ClassOK {
			t.Fatalf("discard %v: classes %v, %v", discard, first.Class, second.Class)
		}
		if (first.Raw == nil) != discard {
			t.Errorf("discard %v: Raw = %q", discard, first.Raw)
		}
		if !discard && string(first.Raw) != `{"callSkill":"first","dsn":1}` {
			t.Errorf("Raw changed with a later response: %q", first.Raw)
		}
		if first.Record.CallSkill == nil || *first.Record.CallSkill != "first" || *first.Record.DSN != 1 {
			t.Errorf("discard %v: first record changed with a later response: %+v", discard, first.Record)
		}
	}
}

func TestRetryTiming(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string // header on the first answer (429)
		cap        time.Duration
		wantSleep  time.Duration
		wantReport time.Duration
	}{
		{"seconds", "2", 0, 2 * time.Second, 2 * time.Second},
		// The fake clock advances 1ms per reading and reads base+2ms when
		// the answer arrives; the date is 7s after base.
		{"http date", base.Add(7 * time.Second).Format(http.TimeFormat), 0, 7*time.Second - 2*time.Millisecond, 7*time.Second - 2*time.Millisecond},
		{"past http date falls back to backoff", base.Add(-time.Hour).Format(http.TimeFormat), 0, time.Second - 1, 0},
		{"clamped seconds", "3600", 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{"clamped date", base.Add(24 * time.Hour).Format(http.TimeFormat), 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{"garbage falls back to backoff", "soon", 0, time.Second - 1, 0},
		{"absent uses backoff", "", 0, time.Second - 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					writeJSON(w, http.StatusTooManyRequests, ``)
					return
				}
				writeJSON(w, http.StatusOK, okBody)
			})
			log := &attemptLog{}
			cfg := testConfig(ts)
			cfg.BackoffBase, cfg.BackoffCap, cfg.RetryAfterCap = time.Second, 8*time.Second, tc.cap
			cfg.OnAttempt = log.add
			c := newTestClient(t, cfg)
			fc := newFakeClock()
			fc.install(c)
			res := c.Query(t.Context(), testKey)
			if res.Class != ClassOK || res.Attempts != 2 {
				t.Fatalf("%v after %d attempts: %s", res.Class, res.Attempts, res.Message)
			}
			if got := fc.slept(); len(got) != 1 || got[0] != tc.wantSleep {
				t.Errorf("slept %v, want [%v]", got, tc.wantSleep)
			}
			if atts := log.all(); atts[0].RetryAfter != tc.wantReport || atts[0].HTTPStatus != 429 {
				t.Errorf("attempt 1 reported %+v, want RetryAfter %v", atts[0], tc.wantReport)
			}
		})
	}
}

func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, ``)
	})
	cfg := testConfig(ts)
	cfg.MaxAttempts, cfg.BackoffBase, cfg.BackoffCap = 6, 100*time.Millisecond, 300*time.Millisecond
	c := newTestClient(t, cfg)
	fc := newFakeClock()
	fc.install(c)
	res := c.Query(t.Context(), testKey)
	if res.Class != ClassTransient || res.Attempts != 6 {
		t.Fatalf("%v after %d attempts", res.Class, res.Attempts)
	}
	// Jitter draws its maximum: min(cap, base*2^(n-1)) - 1ns; no sleep after the last attempt.
	want := []time.Duration{100*time.Millisecond - 1, 200*time.Millisecond - 1, 300*time.Millisecond - 1, 300*time.Millisecond - 1, 300*time.Millisecond - 1}
	if got := fc.slept(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slept %v, want %v", got, want)
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	base, ceiling := 50*time.Millisecond, 2*time.Second
	wantCeil := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range wantCeil {
		if got := backoffCeiling(base, ceiling, i+1); got != w*time.Millisecond {
			t.Errorf("ceiling(attempt %d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := backoffCeiling(base, ceiling, 1<<30); got != ceiling {
		t.Errorf("ceiling(huge attempt) = %v, want cap (no overflow)", got)
	}
	for n := 1; n <= 10; n++ {
		c := backoffCeiling(base, ceiling, n)
		if lo := fullJitter(base, ceiling, n, func(int64) int64 { return 0 }); lo != 0 {
			t.Errorf("min draw = %v, want 0", lo)
		}
		if hi := fullJitter(base, ceiling, n, func(n int64) int64 { return n - 1 }); hi != c-1 {
			t.Errorf("max draw = %v, want %v", hi, c-1)
		}
		for range 200 {
			if d := fullJitter(base, ceiling, n, realClock.randN); d < 0 || d >= c {
				t.Fatalf("attempt %d: draw %v outside [0, %v)", n, d, c)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"99999999999999", maxRetryAfterSeconds * time.Second, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"", 0, false},
		{"later", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Tue, 02 Jan 2024 03:04:15 GMT", 10 * time.Second, true},
		{"Tuesday, 02-Jan-24 03:04:15 GMT", 10 * time.Second, true}, // RFC 850
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBodyCap(t *testing.T) {
	t.Parallel()
	const twoMiB = 2 << 20
	big := `{"resultCode":"0100000","resultDesc":{"callingNum":"` + strings.Repeat("9", twoMiB) + `"}}`
	tests := []struct {
		name string
		h    handlerFunc
	}{
		{"2 MiB with Content-Length", func(_ int, w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, big)
		}},
		{"2 MiB chunked", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			for i := 0; i < len(big); i += 32 << 10 {
				io.WriteString(w, big[i:min(i+32<<10, len(big))])
				w.(http.Flusher).Flush()
			}
		}},
		{"endless stream", func(_ int, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			chunk := bytes.Repeat([]byte("9"), 32<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tc.h)
			cfg := testConfig(ts)
			cfg.MaxAttempts = 1
			c := newTestClient(t, cfg)
			res := c.Query(t.Context(), testKey)
			if res.Class != ClassTransient || !errors.Is(res.Err, errBodyTooLarge) || !strings.Contains(res.Message, "max-body-bytes") {
				t.Fatalf("class %v, err %v; want transient body-too-large", res.Class, res.Err)
			}
		})
	}
}

// countingReader is an endless body that counts what was read from it.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '9'
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestReadCappedIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	body := &countingReader{}
	var buf []byte
	err := readCapped(&http.Response{ContentLength: -1, Body: io.NopCloser(body)}, limit, &buf)
	if !errors.Is(err, errBodyTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if body.n > limit+1 || cap(buf) > 4*limit {
		t.Errorf("read %d bytes into a %d-byte buffer for a %d-byte cap", body.n, cap(buf), limit)
	}
	// A declared oversize length is refused before reading anything.
	body = &countingReader{}
	err = readCapped(&http.Response{ContentLength: 2 * limit, Body: io.NopCloser(body)}, limit, &buf)
	if !errors.Is(err, errBodyTooLarge) || body.n != 0 {
		t.Errorf("declared 2 MiB: err %v after reading %d bytes", err, body.n)
	}
}

func TestCancellation(t *testing.T) {
	t.Parallel()
	t.Run("during a hanging request", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		c := newTestClient(t, testConfig(ts))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		res := c.Query(ctx, testKey)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Query returned %v after cancel", took)
		}
		if res.Class != ClassTransient || !errors.Is(res.Err, context.Canceled) || res.Attempts != 1 {
			t.Errorf("class %v, err %v, attempts %d; want transient wrapping context.Canceled after 1", res.Class, res.Err, res.Attempts)
		}
	})
	t.Run("during backoff", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 503, ``) })
		cfg := testConfig(ts)
		cfg.BackoffBase, cfg.BackoffCap = time.Hour, time.Hour
		cfg.MaxAttempts = 5
		ctx, cancel := context.WithCancel(t.Context())
		// Cancel once the first attempt has ended, i.e. during the backoff,
		// however slow the machine is.
		cfg.OnAttempt = func(Attempt) { time.AfterFunc(50*time.Millisecond, cancel) }
		c := newTestClient(t, cfg)
		c.clock.randN = func(n int64) int64 { return n - 1 } // a real, hour-long sleep
		start := time.Now()
		res := c.Query(ctx, testKey)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Query returned %v after cancel", took)
		}
		if res.Class != ClassTransient || !errors.Is(res.Err, context.Canceled) || res.Attempts != 1 || ts.n.Load() != 1 {
			t.Errorf("class %v, err %v, attempts %d; want transient wrapping context.Canceled after 1", res.Class, res.Err, res.Attempts)
		}
		if !strings.Contains(res.Message, "HTTP 503") {
			t.Errorf("message %q should keep the last attempt's error", res.Message)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, okBody) })
		lim := &countingLimiter{}
		cfg := testConfig(ts)
		cfg.Limiter = lim
		c := newTestClient(t, cfg)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := c.Query(ctx, testKey)
		if res.Class != ClassTransient || !errors.Is(res.Err, context.Canceled) || res.Attempts != 0 || ts.n.Load() != 0 {
			t.Errorf("class %v, err %v, attempts %d, requests %d", res.Class, res.Err, res.Attempts, ts.n.Load())
		}
	})
	t.Run("per-attempt timeout is transient and retried", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				<-r.Context().Done()
				return
			}
			writeJSON(w, 200, okBody)
		})
		cfg := testConfig(ts)
		cfg.RequestTimeout = 200 * time.Millisecond
		c := newTestClient(t, cfg)
		res := c.Query(t.Context(), testKey)
		if res.Class != ClassOK || res.Attempts != 2 {
			t.Errorf("class %v after %d attempts: %s", res.Class, res.Attempts, res.Message)
		}
	})
}

func TestLimiterEveryAttempt(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			writeJSON(w, 502, ``)
			return
		}
		writeJSON(w, 200, okBody)
	})
	lim := &countingLimiter{}
	cfg := testConfig(ts)
	cfg.Limiter = lim
	c := newTestClient(t, cfg)
	if res := c.Query(t.Context(), testKey); res.Class != ClassOK || res.Attempts != 3 {
		t.Fatalf("%v after %d attempts", res.Class, res.Attempts)
	}
	if n := lim.n.Load(); n != 3 {
		t.Errorf("limiter waited %d times for 3 attempts", n)
	}

	failing := &countingLimiter{err: errors.New("rate: Wait(n=1) would exceed context deadline")}
	cfg.Limiter = failing
	c2 := newTestClient(t, cfg)
	before := ts.n.Load()
	res := c2.Query(t.Context(), testKey)
	if res.Class != ClassTransient || res.Attempts != 0 || ts.n.Load() != before || !strings.Contains(res.Message, "rate limiter") {
		t.Errorf("limiter failure: class %v attempts %d message %q", res.Class, res.Attempts, res.Message)
	}
}

func TestTLSVerification(t *testing.T) {
	t.Parallel()
	t.Run("unknown CA is fatal after one attempt", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, okBody) })
		cfg := testConfig(ts)
		cfg.CAFile = ""
		log := &attemptLog{}
		cfg.OnAttempt = log.add
		c := newTestClient(t, cfg)
		res := c.Query(t.Context(), testKey)
		if res.Class != ClassFatal || res.Attempts != 1 || len(log.all()) != 1 || ts.n.Load() != 0 {
			t.Errorf("class %v after %d attempts, %d requests: %s", res.Class, res.Attempts, ts.n.Load(), res.Message)
		}
		if !strings.Contains(res.Message, "TLS verification failed") {
			t.Errorf("message %q", res.Message)
		}
	})
	t.Run("server name override for an IP endpoint", func(t *testing.T) {
		t.Parallel()
		cert, leaf := certFor(t, "cms.example")
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, okBody) }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		cfg := Config{BaseURL: loopbackURL(t, srv.URL), Credentials: testCreds, CAFile: writePEM(t, leaf), MaxAttempts: 3}

		c := newTestClient(t, cfg)
		if res := c.Query(t.Context(), testKey); res.Class != ClassFatal || res.Attempts != 1 {
			t.Errorf("without tls-server-name: %v after %d attempts (%s), want fatal after 1", res.Class, res.Attempts, res.Message)
		}
		cfg.TLSServerName = "cms.example"
		c = newTestClient(t, cfg)
		if res := c.Query(t.Context(), testKey); res.Class != ClassOK {
			t.Errorf("with tls-server-name: %v: %s", res.Class, res.Message)
		}
	})
	t.Run("insecure skip verify warns and connects", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, `{"request":{},"status":"UP"}`)
		})
		var logs bytes.Buffer
		cfg := testConfig(ts)
		cfg.CAFile, cfg.InsecureSkipVerify = "", true
		cfg.Logger = zerolog.New(&logs)
		c := newTestClient(t, cfg)
		if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "insecure-skip-verify") {
			t.Errorf("no warning logged: %s", logs.String())
		}
		p := c.Ping(t.Context())
		if !p.Reachable || p.TLSVerified || !p.SignatureAccepted || p.OK() {
			t.Errorf("ping = %+v; verification is off, so not OK", p)
		}
		if !strings.Contains(p.String(), "verification disabled") {
			t.Errorf("ping string %q", p.String())
		}
	})
}

type capturedCall struct {
	name string
	res  Result[Record]
}

// TestSecretsNeverLeak drives every failure path with debug logging on and
// looks for the SK in everything the client produced.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := zerolog.New(&logs).Level(zerolog.DebugLevel)
	var outputs []string
	add := func(name string, r Result[Record]) {
		outputs = append(outputs, name, r.Message, fmt.Sprintf("%v %+v %#v", r, r, r))
		if r.Err != nil {
			outputs = append(outputs, r.Err.Error())
		}
	}

	ts := newTestServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n%2 == 1 {
			writeJSON(w, 503, `{"resultCode":"0100999","resultDesc":"busy"}`)
			return
		}
		writeJSON(w, 200, `{"resultCode":"0100002","resultDesc":"bad"}`)
	})
	cfg := testConfig(ts)
	cfg.Logger = logger
	c := newTestClient(t, cfg)
	add("retry then permanent", c.Query(t.Context(), testKey))

	bad := cfg
	bad.Credentials = authv2.Credentials{AK: testCreds.AK, SK: testSK + "-wrong"}
	cb := newTestClient(t, bad)
	add("wrong sk", cb.Query(t.Context(), testKey))
	p := cb.Ping(t.Context())
	outputs = append(outputs, p.String(), fmt.Sprintf("%+v", p))

	noCA := cfg
	noCA.CAFile = ""
	add("unknown CA", newTestClient(t, noCA).Query(t.Context(), testKey))

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	down := Config{BaseURL: closedURL, Credentials: testCreds, MaxAttempts: 2, BackoffBase: time.Millisecond, Logger: logger}
	add("connection refused", newTestClient(t, down).Query(t.Context(), testKey))

	insecure := cfg
	insecure.CAFile, insecure.InsecureSkipVerify = "", true
	add("insecure", newTestClient(t, insecure).Query(t.Context(), testKey))

	for _, bad := range []Config{{Credentials: testCreds}, {BaseURL: "ftp://x", Credentials: testCreds}, {BaseURL: "https://h", Credentials: authv2.Credentials{SK: testSK}}} {
		if err := bad.Validate(); err != nil {
			outputs = append(outputs, err.Error())
		}
	}
	outputs = append(outputs, fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), fmt.Sprintf("%v %+v %#v", c, c, c), fmt.Sprintf("%+v", reflect.ValueOf(c).Elem()))

	if logs.Len() == 0 {
		t.Fatal("no log output captured; the test would prove nothing")
	}
	outputs = append(outputs, logs.String())
	for _, o := range outputs {
		if strings.Contains(o, testSK) {
			t.Errorf("SK leaked in: %s", o)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{BaseURL: "https://10.22.26.181:28080", Credentials: testCreds}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		field string
		mod   func(*Config)
	}{
		{"api-url", func(c *Config) { c.BaseURL = "" }},
		{"api-url", func(c *Config) { c.BaseURL = "10.22.26.181:28080" }},
		{"api-url", func(c *Config) { c.BaseURL = "ftp://h" }},
		{"api-url", func(c *Config) { c.BaseURL = "https://" }},
		{"api-url", func(c *Config) { c.BaseURL = "https://user:pw@h:1" }},
		{"api-url", func(c *Config) { c.BaseURL = "https://h:1" + QueryPath }},
		{"api-url", func(c *Config) { c.BaseURL = "https://h:1?x=1" }},
		{"ak (--ak or CMS_AK)", func(c *Config) { c.Credentials.AK = "" }},
		{"ak (--ak or CMS_AK)", func(c *Config) { c.Credentials.AK = "a/b" }},
		{"sk (CMS_SK or --sk-file)", func(c *Config) { c.Credentials.SK = "" }},
		{"signed-headers", func(c *Config) { c.SignedHeaders = []string{} }},
		{"signed-headers", func(c *Config) { c.SignedHeaders = []string{"host", "x-date"} }},
		{"timestamp-precision", func(c *Config) { c.TimestampLayout = time.RFC3339 }},
		{"max-attempts", func(c *Config) { c.MaxAttempts = -1 }},
		{"request-timeout", func(c *Config) { c.RequestTimeout = -time.Second }},
		{"backoff-base", func(c *Config) { c.BackoffBase = -1 }},
		{"backoff-cap", func(c *Config) { c.BackoffCap = -1 }},
		{"backoff-cap", func(c *Config) { c.BackoffBase, c.BackoffCap = time.Second, time.Millisecond }},
		{"retry-after-cap", func(c *Config) { c.RetryAfterCap = -1 }},
		{"max-body-bytes", func(c *Config) { c.MaxBodyBytes = -1 }},
		{"max-conns", func(c *Config) { c.MaxConns = -1 }},
		{"ca-file", func(c *Config) { c.BaseURL, c.CAFile = "http://h:1", "ca.pem" }},
		{"tls-server-name", func(c *Config) { c.BaseURL, c.TLSServerName = "http://h:1", "h" }},
		{"insecure-skip-verify", func(c *Config) { c.BaseURL, c.InsecureSkipVerify = "http://h:1", true }},
		{"insecure-skip-verify", func(c *Config) { c.CAFile, c.InsecureSkipVerify = "ca.pem", true }},
	}
	for _, tc := range tests {
		cfg := good
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%+v: err = %v, want one naming %s", cfg, err, tc.field)
		}
		if _, nerr := New(cfg); nerr == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestNewCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "missing.pem"), notPEM} {
		_, err := New(Config{BaseURL: "https://h:1", Credentials: testCreds, CAFile: f})
		if err == nil || !strings.HasPrefix(err.Error(), "ca-file:") {
			t.Errorf("CAFile %s: err = %v", f, err)
		}
	}
}

func TestPlainHTTPWarns(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PingPath {
			writeJSON(w, 200, `{"request":{"ping":"cms-etl"},"status":"UP"}`)
			return
		}
		writeJSON(w, 200, okBody)
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	c := newTestClient(t, Config{BaseURL: srv.URL, Credentials: testCreds, Logger: zerolog.New(&logs)})
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "plain http") {
		t.Errorf("no warning for http: %s", logs.String())
	}
	if res := c.Query(t.Context(), testKey); res.Class != ClassOK {
		t.Errorf("query over http: %v %s", res.Class, res.Message)
	}
	p := c.Ping(t.Context())
	if p.OK() || p.TLSVerified || !p.Reachable || !p.SignatureAccepted || p.Status != "UP" {
		t.Errorf("ping over http = %+v", p)
	}
	if want := "cms ping " + srv.URL + ": reachable yes, tls: not used, signature accepted yes (HTTP 200, status UP)"; p.String() != want {
		t.Errorf("ping string\n %s\nwant\n %s", p.String(), want)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PingPath {
			writeJSON(w, 404, ``)
			return
		}
		writeJSON(w, 200, `{"request":{"ping":"cms-etl"},"status":"UP"}`)
	})
	c := newTestClient(t, testConfig(ts))
	p := c.Ping(t.Context())
	if !p.OK() || p.HTTPStatus != 200 || p.Status != "UP" || p.Err != nil {
		t.Fatalf("ping = %+v", p)
	}
	if want := "cms ping " + ts.URL + ": reachable yes, tls verified yes, signature accepted yes (HTTP 200, status UP)"; p.String() != want {
		t.Errorf("ping string\n %s\nwant\n %s", p.String(), want)
	}
	seen := ts.requests()
	if len(seen) != 1 || seen[0].VerifyErr != nil || !strings.HasPrefix(string(seen[0].Body), "{") {
		t.Errorf("ping request %+v", seen)
	}

	cfg := testConfig(ts)
	cfg.Credentials.SK = "wrong"
	p = newTestClient(t, cfg).Ping(t.Context())
	if p.OK() || !p.Reachable || !p.TLSVerified || p.SignatureAccepted || p.HTTPStatus != 401 || p.Err == nil {
		t.Errorf("ping with bad SK = %+v", p)
	}
	if s := p.String(); !strings.Contains(s, "signature accepted no (HTTP 401)") || strings.Contains(s, "\n") {
		t.Errorf("ping string %q", s)
	}

	cfg = testConfig(ts)
	cfg.CAFile = ""
	p = newTestClient(t, cfg).Ping(t.Context())
	if p.OK() || !p.Reachable || p.TLSVerified || p.SignatureAccepted || p.Err == nil ||
		!strings.Contains(p.String(), "tls verified no") {
		t.Errorf("ping with unknown CA = %+v: %s", p, p)
	}

	closed := httptest.NewTLSServer(http.NotFoundHandler())
	u := closed.URL
	closed.Close()
	p = newTestClient(t, Config{BaseURL: u, Credentials: testCreds}).Ping(t.Context())
	if p.OK() || p.Reachable || p.Err == nil || !strings.Contains(p.String(), "reachable no") || !strings.Contains(p.String(), "no HTTP response") {
		t.Errorf("ping of a closed port = %s", p)
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Config{BaseURL: "https://10.22.26.181:28080/", Credentials: testCreds})
	got := c.cfg
	if got.MaxAttempts != 5 || got.RequestTimeout != 15*time.Second || got.MaxBodyBytes != 1<<20 ||
		got.MaxConns != 8 || got.TimestampLayout != authv2.LayoutMillis || got.RetryAfterCap != 30*time.Second ||
		got.BackoffBase != 250*time.Millisecond || got.BackoffCap != 10*time.Second {
		t.Errorf("defaults not applied: %+v", *got)
	}
	if c.signer.headers != "content-length;content-type;host" {
		t.Errorf("signed headers %q", c.signer.headers)
	}
	if c.tr.MaxConnsPerHost != 8 || c.tr.MaxIdleConnsPerHost != 8 || c.tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("transport pool %d/%d, insecure %v", c.tr.MaxConnsPerHost, c.tr.MaxIdleConnsPerHost, c.tr.TLSClientConfig.InsecureSkipVerify)
	}
	if c.urls[QueryPath].String() != "https://10.22.26.181:28080"+QueryPath || c.host != "10.22.26.181:28080" {
		t.Errorf("query URL %s, host %s", c.urls[QueryPath], c.host)
	}
}

// Only 429 and a 503 that says when to come back are throttling; other 5xx
// and a bare 503 are transient faults of one call.
func TestAttemptThrottle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		retryAfter string
		throttle   bool
	}{
		{429, "", true},
		{429, "1", true},
		{503, "2", true},
		{503, "", false},
		{503, "soon", false}, // unparsable: no Retry-After
		{500, "1", false},
		{502, "", false},
		{504, "", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d %q", tc.status, tc.retryAfter), func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					writeJSON(w, tc.status, ``)
					return
				}
				writeJSON(w, 200, okBody)
			})
			log := &attemptLog{}
			cfg := testConfig(ts)
			cfg.OnAttempt = log.add
			c := newTestClient(t, cfg)
			newFakeClock().install(c)
			if res := c.Query(t.Context(), testKey); res.Class != ClassOK || res.Attempts != 2 {
				t.Fatalf("%v after %d attempts: %s", res.Class, res.Attempts, res.Message)
			}
			atts := log.all()
			if atts[0].Throttle != tc.throttle || !atts[0].Retried || atts[0].Class != ClassTransient {
				t.Errorf("first attempt %+v, want Throttle %v, retried, transient", atts[0], tc.throttle)
			}
			if atts[1].Throttle || atts[1].Retried {
				t.Errorf("second attempt %+v", atts[1])
			}
		})
	}
}

// budget refuses retries after allowing n.
type budget struct {
	mu      sync.Mutex
	allowed int
	asked   int
}

func (b *budget) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked++
	if b.allowed > 0 {
		b.allowed--
		return true
	}
	return false
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 502, ``) })
	log := &attemptLog{}
	b := &budget{allowed: 1}
	cfg := testConfig(ts)
	cfg.MaxAttempts = 5
	cfg.RetryBudget = b
	cfg.OnAttempt = log.add
	c := newTestClient(t, cfg)
	newFakeClock().install(c)
	res := c.Query(t.Context(), testKey)
	// One retry allowed, then the budget refuses: 2 attempts, not 5.
	if res.Class != ClassTransient || res.Attempts != 2 || ts.n.Load() != 2 || b.asked != 2 {
		t.Fatalf("%v after %d attempts (%d requests, budget asked %d times): %s", res.Class, res.Attempts, ts.n.Load(), b.asked, res.Message)
	}
	if !strings.Contains(res.Message, "retry budget exhausted") || !strings.Contains(res.Message, "HTTP 502") {
		t.Errorf("message %q should say the budget stopped the retries, and why the attempt failed", res.Message)
	}
	atts := log.all()
	if len(atts) != 2 || !atts[0].Retried || atts[0].BudgetExhausted || atts[1].Retried || !atts[1].BudgetExhausted {
		t.Errorf("attempts %+v", atts)
	}
	// The last attempt is not a retry candidate: the budget is not asked.
	b2 := &budget{allowed: 10}
	cfg.MaxAttempts, cfg.RetryBudget, cfg.OnAttempt = 2, b2, nil
	c2 := newTestClient(t, cfg)
	newFakeClock().install(c2)
	if res := c2.Query(t.Context(), testKey); res.Attempts != 2 || b2.asked != 1 || strings.Contains(res.Message, "budget") {
		t.Errorf("%d attempts, budget asked %d times, message %q", res.Attempts, b2.asked, res.Message)
	}
}

// An attempt cut off before its request was written is reported as not
// sent: the summary counts only requests the server could have seen.
func TestAttemptNotSentWhenCanceledWhileConnecting(t *testing.T) {
	t.Parallel()
	// A listener that accepts TCP but never completes the TLS handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	log := &attemptLog{}
	cfg := Config{BaseURL: "https://" + ln.Addr().String(), Credentials: testCreds, MaxAttempts: 3, OnAttempt: log.add}
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	res := c.Query(ctx, testKey)
	atts := log.all()
	if res.Class != ClassTransient || len(atts) != 1 || atts[0].Sent || !atts[0].Canceled || atts[0].Retried {
		t.Fatalf("class %v, attempts %+v; want one attempt, not sent, canceled", res.Class, atts)
	}

	// Written and then cut off: sent.
	ts := newTestServer(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	log2 := &attemptLog{}
	cfg2 := testConfig(ts)
	cfg2.OnAttempt = log2.add
	c2 := newTestClient(t, cfg2)
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go func() {
		for ts.n.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel2()
	}()
	c2.Query(ctx2, testKey)
	if atts := log2.all(); len(atts) != 1 || !atts[0].Sent || !atts[0].Canceled {
		t.Fatalf("attempts %+v; want one attempt, sent, canceled", atts)
	}
}

// Retries after a throttle wait out the Retry-After; they do not draw on the
// retry budget.
func TestRetryBudgetSparesThrottles(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			writeJSON(w, 429, ``)
			return
		}
		writeJSON(w, 200, okBody)
	})
	b := &budget{}
	cfg := testConfig(ts)
	cfg.RetryBudget = b
	c := newTestClient(t, cfg)
	newFakeClock().install(c)
	if res := c.Query(t.Context(), testKey); res.Class != ClassOK || res.Attempts != 3 || b.asked != 0 {
		t.Fatalf("%v after %d attempts, budget asked %d times; want ok after 3 without asking", res.Class, res.Attempts, b.asked)
	}
}
