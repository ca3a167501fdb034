package cms

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
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

// Envelope members, as slots of envelopeIndex.
const (
	envResultCode = iota
	envResult
	envResultDesc
	envResultDatas
	numEnvelope
)

// envelopeIndex matches the four envelope members case-insensitively, as
// encoding/json did before the scanner replaced it; other members are skipped.
func envelopeIndex(key []byte) int {
	switch k := string(key); {
	case strings.EqualFold(k, "resultCode"):
		return envResultCode
	case strings.EqualFold(k, "result"):
		return envResult
	case strings.EqualFold(k, "resultDesc"):
		return envResultDesc
	case strings.EqualFold(k, "resultDatas"):
		return envResultDatas
	}
	return -1
}

// envValue is one envelope member as scanned; tok aliases the body.
type envValue struct {
	kind int
	tok  []byte
	esc  bool
}

// errInvalidJSON is wrapped by envelope scanning errors.
var errInvalidJSON = errors.New("invalid JSON")

// DecodeResponse decodes the envelope only; the object is left raw for
// DecodeRecord. A body that is not a JSON object, or that carries neither
// resultCode nor result, is an error wrapping ErrMalformed. The returned
// Object is a copy: body may be reused once this returns.
func DecodeResponse(body []byte) (Response, error) { return decodeResponse(body, true) }

// decodeResponse is DecodeResponse; without clone, Object aliases body.
func decodeResponse(body []byte, clone bool) (Response, error) {
	var env [numEnvelope]envValue
	s := objectScanner{b: body, invalid: errInvalidJSON}
	err := s.object(envelopeIndex, func(i, kind int, tok []byte, esc bool) {
		env[i] = envValue{kind: kind, tok: tok, esc: esc}
	})
	if err != nil {
		return Response{}, malformed(err.Error())
	}
	var r Response
	if code, ok := scalarText(env[envResultCode]); ok {
		r.Code = code
	} else if code, ok := scalarText(env[envResult]); ok {
		r.Code, r.Legacy = code, true
	} else {
		return Response{}, malformed("neither resultCode nor result present")
	}
	desc, datas := env[envResultDesc], env[envResultDatas]
	switch {
	case desc.kind == tokObject:
		r.Object = nonEmptyObject(desc.tok)
		if r.Object == nil && datas.kind == tokObject {
			r.Object = nonEmptyObject(datas.tok)
		}
	case datas.kind == tokObject:
		r.Object = nonEmptyObject(datas.tok)
	}
	if clone {
		r.Object = bytes.Clone(r.Object)
	}
	if msg, ok := scalarText(desc); ok {
		r.Message = msg
	} else if msg, ok := scalarText(datas); ok {
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
func scalarText(v envValue) (string, bool) {
	if len(v.tok) == 0 {
		return "", false
	}
	switch v.kind {
	case tokString:
		if !v.esc {
			return string(v.tok[1 : len(v.tok)-1]), true
		}
		return unquote(v.tok), true
	case tokNumber:
		return string(v.tok), true
	}
	return "", false
}

// nonEmptyObject returns raw (an object) unless it is {}.
func nonEmptyObject(raw []byte) json.RawMessage {
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
//   - Other transport and body errors, 408, 429 and 5xx are transient.
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
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		// 408: load balancers close idle connections with it.
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

// Refused reports a failure Classify holds fatal because of who is calling
// or where: 401, 403 or a failed TLS verification (status is the HTTP
// status, 0 without a response; err the failure's cause). Retrying it with
// the same signature can get the caller's IP locked. A caller that makes
// other failures fatal for its own reasons (a streak of failures) tells
// them apart with it.
func Refused(status int, err error) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden || err != nil && isTLSVerifyError(err)
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
