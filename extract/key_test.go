package extract

import (
	"strings"
	"testing"
)

func TestQuoteValue(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc-12", `"abc-12"`},
		{"a\x00\"b", `"a\x00\"b"`},
		{strings.Repeat("9", 80), `"` + strings.Repeat("9", 80) + `"`},
		{strings.Repeat("9", 81), `"` + strings.Repeat("9", 80) + `"... (81 bytes)`},
		{strings.Repeat("é", 100), `"` + strings.Repeat("é", 80) + `"... (200 bytes)`},
	}
	for _, tt := range tests {
		if got := QuoteValue(tt.in); got != tt.want {
			t.Errorf("QuoteValue(%.20q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	err := ValidateCallID(strings.Repeat("7", 50<<20))
	if got := err.Error(); len(got) > 150 || !strings.HasPrefix(got, `callId "777`) || !strings.HasSuffix(got, "(52428800 bytes): longer than 20 characters") {
		t.Errorf("error for a 50 MB callId: %d bytes: %.200s", len(got), got)
	}
}
