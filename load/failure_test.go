package load

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cmsetl/cms-etl/extract"
)

// Not parallel: AllocsPerRun counts the whole process's allocations.
func TestCleanText(t *testing.T) {
	long := strings.Repeat("x", MaxFailureText+10)
	// A 3-byte character straddling the cut: the cut moves before it.
	straddle := strings.Repeat("a", MaxFailureText-1) + "€" + "tail"
	tests := []struct{ in, want string }{
		{"", ""},
		{"1659513159000-1", "1659513159000-1"},
		{"héllo, wörld", "héllo, wörld"},
		{"a\x00b\x00", "ab"},
		{"\xff\xfe1", "\uFFFD1"},
		{"ok\xc3", "ok\uFFFD"},
		{"\x00\xff", "\uFFFD"},
		{long, strings.Repeat("x", MaxFailureText) + "...[truncated, 1034 bytes]"},
		{straddle, strings.Repeat("a", MaxFailureText-1) + "...[truncated, 1030 bytes]"},
	}
	for _, tt := range tests {
		got := CleanText(tt.in)
		if got != tt.want {
			t.Errorf("CleanText(%.30q) = %.60q, want %.60q", tt.in, got, tt.want)
		}
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Errorf("CleanText(%.30q) is not storable: %.60q", tt.in, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { CleanText("1659513159000-1") }); n != 0 {
		t.Errorf("clean text allocates %v times, want 0", n)
	}
}

func TestFailureCleanAndValidate(t *testing.T) {
	t.Parallel()
	f := Failure{Line: 3, Key: extract.Key{CallID: "1-\x00"}, Raw: [3]string{"\x00", "\xff", "ok"},
		Outcome: OutcomeRejected, Reason: "r\x00", ResultCode: "\xfe"}
	got := f.Clean()
	want := Failure{Line: 3, Key: extract.Key{CallID: "1-"}, Raw: [3]string{"", "\uFFFD", "ok"},
		Outcome: OutcomeRejected, Reason: "r", ResultCode: "\uFFFD"}
	if got != want {
		t.Errorf("Clean() = %+v, want %+v", got, want)
	}
	if f.Raw[0] != "\x00" {
		t.Error("Clean changed the original")
	}
	for _, o := range []string{OutcomeFailed, OutcomeRejected} {
		if err := (Failure{Outcome: o}).Validate(); err != nil {
			t.Errorf("outcome %s: %v", o, err)
		}
	}
	if err := (Failure{Outcome: "loaded"}).Validate(); err == nil || !strings.Contains(err.Error(), "outcome") {
		t.Errorf("outcome loaded: %v, want an error naming the outcome", err)
	}
}
