package cms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// verdict is one attempt's reading of an answer: its class and what the
// call reports.
type verdict struct {
	class   Class
	code    string // business result code
	message string
	err     error
}

// callMeta is what every call reports besides its decoded value.
type callMeta struct {
	verdict
	httpStatus int
	attempts   int
	fetchedAt  time.Time
	latency    time.Duration
}

// interpreter reads one answer: ex describes the exchange, body is the
// response body, valid only during the call (it goes back to a pool). It
// keeps what it decoded itself, overwriting the previous attempt's.
type interpreter func(ex exchanged, body []byte) verdict

// roundTrips posts body to u, every attempt through the limiter and signed
// afresh, until one is final: not transient, the last allowed, refused by
// the retry budget, or cut off by ctx (then the call is transient with Err
// wrapping ctx.Err()). Every attempt is reported to Config.OnAttempt.
func (c *Client) roundTrips(ctx context.Context, key extract.Key, u *url.URL, body []byte, read interpreter) callMeta {
	var m callMeta
	for n := 1; ; n++ {
		if err := c.wait(ctx); err != nil {
			return c.stopped(ctx, m, err)
		}
		m.attempts = n
		at := c.attempt(ctx, key, u, body, read, &m)
		if m.class == ClassTransient && ctx.Err() != nil {
			at.Canceled = true
			c.report(at)
			return c.stopped(ctx, m, m.err)
		}
		at.Retried = m.class == ClassTransient && n < c.cfg.MaxAttempts
		// A throttle's retry waits out the server's Retry-After and the
		// pool's cut rate; the budget guards against retry storms on faults.
		if at.Retried && !at.Throttle && c.cfg.RetryBudget != nil && !c.cfg.RetryBudget.TryRetry() {
			at.Retried, at.BudgetExhausted = false, true
			m.message += " (not retried: retry budget exhausted)"
		}
		c.report(at)
		if !at.Retried {
			return m
		}
		d := c.retryDelay(n, at.RetryAfter)
		if e := c.log.Debug(); e.Enabled() {
			e.Stringer("key", key).Str("path", u.Path).Int("attempt", n).Int("http_status", m.httpStatus).
				Str("result_code", m.code).Str("error", m.message).Dur("wait", d).Msg("cms request transient failure, retrying")
		}
		if err := c.clock.sleep(ctx, d); err != nil {
			return c.stopped(ctx, m, err)
		}
	}
}

// attempt runs one exchange and reads it into m; it describes the attempt
// for OnAttempt (the retry decision is the caller's).
func (c *Client) attempt(ctx context.Context, key extract.Key, u *url.URL, body []byte, read interpreter, m *callMeta) Attempt {
	bp := c.getBuf()
	defer c.putBuf(bp)
	ex := c.exchange(ctx, u, body, bp)
	m.httpStatus, m.latency, m.fetchedAt = ex.status, ex.latency, time.Time{}
	if ex.status != 0 {
		m.fetchedAt = ex.at
	}
	m.verdict = read(ex, *bp)
	return Attempt{
		Key: key, Number: m.attempts, HTTPStatus: ex.status, Class: m.class,
		Latency: ex.latency, RetryAfter: ex.retryAfter, Sent: ex.sent,
		// Only these say the server is over its load; other 5xx may be one
		// sick backend behind the load balancer.
		Throttle: ex.status == http.StatusTooManyRequests || (ex.status == http.StatusServiceUnavailable && ex.hasRetryAfter),
	}
}

func (c *Client) report(a Attempt) {
	if c.cfg.OnAttempt != nil {
		c.cfg.OnAttempt(a)
	}
}

// wait honours ctx and the limiter before an attempt.
func (c *Client) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.cfg.Limiter == nil {
		return nil
	}
	if err := c.cfg.Limiter.Wait(ctx); err != nil {
		return fmt.Errorf("rate limiter: %w", err)
	}
	return nil
}

// stopped turns a cancelled context (or a failed limiter wait) into the
// final transient verdict, keeping what the last attempt saw in the message.
func (c *Client) stopped(ctx context.Context, m callMeta, cause error) callMeta {
	m.class = ClassTransient
	if ctxErr := ctx.Err(); ctxErr != nil {
		if m.message != "" {
			m.err = fmt.Errorf("cms request stopped: %w (last attempt: %s)", ctxErr, m.message)
		} else {
			m.err = fmt.Errorf("cms request stopped: %w", ctxErr)
		}
	} else {
		m.err = cause
	}
	m.message = m.err.Error()
	return m
}

// decodeBody decodes a 2xx body (an error there, or an empty 2xx body, is
// the attempt's error); on other statuses the body only adds detail to the
// message, so its decoding error is ignored. It returns the attempt's error.
func decodeBody(ex exchanged, body []byte, decode func([]byte) error) error {
	ok := ex.status >= 200 && ex.status <= 299
	switch {
	case ex.err != nil:
		return ex.err
	case len(body) == 0 && ok:
		return malformed("empty body")
	case len(body) > 0:
		if err := decode(body); err != nil && ok {
			return err
		}
	}
	return nil
}

// failed completes the verdict of a failed attempt: its one-line message
// and its error.
func failed(v verdict, ex exchanged, resp Response, u *url.URL, err error) verdict {
	v.message = failureMessage(ex.status, resp, err)
	v.err = failureErr(v.class, ex.status, u, v.message, err)
	return v
}

// readEnvelope reads an answer of the querybasiccallinfo family: HTTP status,
// then the envelope (resultCode/result, resultDesc/resultDatas), then the
// result object through object (called for a success with an object; it
// returns a decoding error). Without keepRaw the object aliases the body and
// must be decoded, not kept. It returns the verdict and the object.
func readEnvelope(ex exchanged, body []byte, u *url.URL, keepRaw bool, object func(obj []byte) error) (verdict, []byte) {
	var resp Response
	err := decodeBody(ex, body, func(b []byte) (derr error) {
		resp, derr = decodeResponse(b, keepRaw)
		return derr
	})
	if err == nil && resp.Object != nil && Classify(ex.status, resp, nil) == ClassOK {
		if derr := object(resp.Object); derr != nil {
			err = malformed("result object: " + derr.Error())
		}
	}
	v := verdict{class: Classify(ex.status, resp, err), code: resp.Code}
	switch v.class {
	case ClassOK, ClassNoData:
		v.message = resp.Message
		return v, resp.Object
	}
	return failed(v, ex, resp, u, err), nil
}

// failureErr is the Err of a failed call: the underlying error of a
// transient or fatal one, a *StatusError for a permanent HTTP-level failure
// (the answer says nothing about the call, only about the endpoint).
func failureErr(class Class, status int, u *url.URL, message string, err error) error {
	switch {
	case class == ClassTransient || class == ClassFatal:
		if err == nil {
			err = errors.New(message)
		}
		return err
	case class == ClassPermanent && (status < 200 || status > 299):
		return &StatusError{Status: status, URL: u.String()}
	}
	return nil
}
