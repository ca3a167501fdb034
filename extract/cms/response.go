package cms

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Business result codes (cms-api.md section 4).
const (
	CodeSuccess        = "0100000"
	CodeLegacySuccess  = "0" // legacy "result" field
	CodeCallFailed     = "0100001"
	CodeInvalidParam   = "0100002"
	CodeWrongCTI       = "0100003"
	CodeUnknownError   = "0100999"
	CodeQualityInspect = "0101001"
	CodeNoSuchNumber   = "0101002"
	CodeNoPermission   = "0101003"
)

// Response is the decoded envelope of a querybasiccallinfo response. Servers
// send the new pair (resultCode/resultDesc), the legacy pair
// (result/resultDatas), or both.
type Response struct {
	// Code is resultCode when present, else the legacy result.
	Code string
	// Message is the text of resultDesc (or resultDatas) when it is not an
	// object: the failure message.
	Message string
	// Object is the result object: resultDesc when it is a non-empty object,
	// else resultDatas when it is one. Nil when absent, null or {}.
	Object json.RawMessage
	// Legacy reports that Code came from the legacy result field.
	Legacy bool
}

// ErrMalformed marks a response body that is not a usable envelope.
var ErrMalformed = errors.New("malformed response")

// envelope holds the four fields raw so each can be string, object or null.
type envelope struct {
	ResultCode  json.RawMessage `json:"resultCode"`
	Result      json.RawMessage `json:"result"`
	ResultDesc  json.RawMessage `json:"resultDesc"`
	ResultDatas json.RawMessage `json:"resultDatas"`
}

// DecodeResponse decodes the envelope only; the object is left raw for
// DecodeRecord. A body that is not a JSON object, or that carries neither
// resultCode nor result, is an error wrapping ErrMalformed.
func DecodeResponse(body []byte) (Response, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Response{}, malformed(err.Error())
	}
	var r Response
	if code, ok := scalarText(env.ResultCode); ok {
		r.Code = code
	} else if code, ok := scalarText(env.Result); ok {
		r.Code, r.Legacy = code, true
	} else {
		return Response{}, malformed("neither resultCode nor result present")
	}
	switch {
	case isObject(env.ResultDesc):
		r.Object = nonEmptyObject(env.ResultDesc)
		if r.Object == nil && isObject(env.ResultDatas) {
			r.Object = nonEmptyObject(env.ResultDatas)
		}
	case isObject(env.ResultDatas):
		r.Object = nonEmptyObject(env.ResultDatas)
	}
	if msg, ok := scalarText(env.ResultDesc); ok {
		r.Message = msg
	} else if msg, ok := scalarText(env.ResultDatas); ok {
		r.Message = msg
	}
	return r, nil
}

func malformed(detail string) error {
	return &malformedError{detail: detail}
}

type malformedError struct{ detail string }

func (e *malformedError) Error() string { return "malformed response: " + e.detail }
func (e *malformedError) Unwrap() error { return ErrMalformed }

// scalarText returns a JSON string's value or a number's literal text. Null,
// absent, objects, arrays and booleans give ok=false.
func scalarText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), true
	}
	return "", false
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// nonEmptyObject returns raw (an object) unless it is {}.
func nonEmptyObject(raw json.RawMessage) json.RawMessage {
	if IsEmptyObject(raw) {
		return nil
	}
	return raw
}

// Classify maps the outcome of one attempt to exactly one class. status is
// the HTTP status (0 when there was no response); err is a transport error or
// a body that could not be read or decoded; resp is the decoded envelope,
// consulted only for a 2xx status and a nil err.
//
//   - 401, 403 and failed TLS verification are fatal: retrying bad
//     credentials can get the caller's IP locked.
//   - Other transport and body errors, 429 and 5xx are transient.
//   - Other statuses outside 2xx are permanent.
//   - On 2xx the business code decides: success (0100000, legacy "0") is ok,
//     or no_data without an object; 0100001 and 0100999 are transient; every
//     other code, known or not, is permanent. A missing code is a malformed
//     body, transient.
func Classify(status int, resp Response, err error) Class {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ClassFatal
	case err != nil && isTLSVerifyError(err):
		return ClassFatal
	case err != nil:
		return ClassTransient
	case status == http.StatusTooManyRequests || status >= 500:
		return ClassTransient
	case status < 200 || status > 299:
		return ClassPermanent
	}
	switch resp.Code {
	case CodeSuccess, CodeLegacySuccess:
		if resp.Object == nil {
			return ClassNoData
		}
		return ClassOK
	case CodeCallFailed, CodeUnknownError, "":
		return ClassTransient
	}
	return ClassPermanent
}

// isTLSVerifyError reports a certificate the client refused: unknown
// authority, wrong name, expired or otherwise invalid.
func isTLSVerifyError(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// statusText is "HTTP 503 Service Unavailable".
func statusText(status int) string {
	s := "HTTP " + strconv.Itoa(status)
	if t := http.StatusText(status); t != "" {
		s += " " + t
	}
	return s
}
