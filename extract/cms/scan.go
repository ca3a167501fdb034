package cms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// objectScanner is a strict single-pass JSON scanner over one object. It
// validates the whole input as encoding/json would, without building values
// for members it does not need. It serves both the envelope and the record,
// where encoding/json's reflection cost as much as the rest of a request.
type objectScanner struct {
	b       []byte
	i       int
	invalid error // wrapped by every error
}

// maxDepth mirrors encoding/json's nesting limit, so the scanner accepts
// exactly the documents encoding/json accepts.
const maxDepth = 10000

func (s *objectScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{s.invalid}, args...)...)
}

func (s *objectScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Token kinds returned by value.
const (
	tokString = iota
	tokNumber
	tokTrue
	tokFalse
	tokNull
	tokObject
	tokArray
)

// object scans the whole input as one object. For every member whose key
// index maps to a slot (>= 0) it calls set with the slot, the value's kind,
// its JSON text and whether a string value needs unescaping.
func (s *objectScanner) object(index func(key []byte) int, set func(i, kind int, tok []byte, esc bool)) error {
	s.ws()
	if s.i >= len(s.b) {
		return s.errorf("empty input")
	}
	if s.b[s.i] != '{' {
		return s.errorf("unexpected %q at offset %d", s.b[s.i], s.i)
	}
	if err := s.members(1, index, set); err != nil {
		return err
	}
	return s.end()
}

// members scans an object from its '{'; depth is its nesting depth. With a
// nil index every member is only validated.
func (s *objectScanner) members(depth int, index func(key []byte) int, set func(i, kind int, tok []byte, esc bool)) error {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.errorf("expected a key at offset %d", s.i)
		}
		key, esc, err := s.str()
		if err != nil {
			return err
		}
		idx := -1
		switch {
		case index == nil:
		case esc:
			// A key written with escapes still names its field exactly.
			var k string
			if err := json.Unmarshal(s.b[key.start-1:key.end+1], &k); err != nil {
				return s.errorf("bad key: %v", err)
			}
			idx = index([]byte(k))
		default:
			idx = index(s.b[key.start:key.end])
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.errorf("expected ':' at offset %d", s.i)
		}
		s.i++
		s.ws()
		start := s.i
		kind, vesc, err := s.value(depth)
		if err != nil {
			return err
		}
		if idx >= 0 {
			set(idx, kind, s.b[start:s.i], vesc)
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errorf("unterminated object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("unexpected %q at offset %d", s.b[s.i], s.i)
		}
	}
}

func (s *objectScanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.errorf("trailing data at offset %d", s.i)
	}
	return nil
}

type span struct{ start, end int }

// str scans a string starting at the opening quote and returns the span of
// its content and whether it needs unescaping (escapes or invalid UTF-8).
func (s *objectScanner) str() (span, bool, error) {
	s.i++ // opening quote
	start := s.i
	esc, high := false, false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			sp := span{start, s.i}
			s.i++
			if high && !esc && !utf8.Valid(s.b[sp.start:sp.end]) {
				esc = true
			}
			return sp, esc, nil
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				return span{}, false, s.errorf("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return span{}, false, s.errorf("unterminated string")
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return span{}, false, s.errorf("bad \\u escape at offset %d", s.i)
					}
				}
				s.i += 6
			default:
				return span{}, false, s.errorf("bad escape at offset %d", s.i)
			}
		case c < 0x20:
			return span{}, false, s.errorf("control character in string at offset %d", s.i)
		default:
			if c >= 0x80 {
				high = true
			}
			s.i++
		}
	}
	return span{}, false, s.errorf("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number scans a JSON number per the JSON grammar.
func (s *objectScanner) number() error {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	default:
		return s.errorf("bad number at offset %d", start)
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return s.errorf("bad number at offset %d", start)
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return s.errorf("bad number at offset %d", start)
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	return nil
}

func (s *objectScanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return s.errorf("bad literal at offset %d", s.i)
	}
	s.i += len(lit)
	return nil
}

// value scans any JSON value; depth is the nesting depth of its container.
func (s *objectScanner) value(depth int) (kind int, esc bool, err error) {
	if s.i >= len(s.b) {
		return 0, false, s.errorf("unexpected end of input")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, esc, err := s.str()
		return tokString, esc, err
	case c == '-' || isDigit(c):
		return tokNumber, false, s.number()
	case c == 't':
		return tokTrue, false, s.literal("true")
	case c == 'f':
		return tokFalse, false, s.literal("false")
	case c == 'n':
		return tokNull, false, s.literal("null")
	case c == '{' || c == '[':
		if depth+1 > maxDepth {
			return 0, false, s.errorf("nesting deeper than %d", maxDepth)
		}
		if c == '{' {
			return tokObject, false, s.skipObject(depth + 1)
		}
		return tokArray, false, s.skipArray(depth + 1)
	default:
		return 0, false, s.errorf("unexpected %q at offset %d", c, s.i)
	}
}

func (s *objectScanner) skipObject(depth int) error { return s.members(depth, nil, nil) }

func (s *objectScanner) skipArray(depth int) error {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if _, _, err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errorf("unterminated array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("unexpected %q at offset %d", s.b[s.i], s.i)
		}
	}
}
