package cli

import (
	"os"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/internal/pgtest"
)

// testClockOffsetEnv hands the tests' clock to etl started as a
// subprocess (the test binary with beMainEnv): the offset from the real
// clock.
const testClockOffsetEnv = "ETL_TEST_CLOCK_OFFSET"

// testOffset puts the tests' clock at noon UTC of the day the test binary
// started, running at the real pace. etl discover (Env.Now) and the
// simulator (CallsConfig.Now) both read it, so "yesterday", the window
// rule and retention agree between them, and no test meets midnight
// however long a run takes on a busy machine.
var testOffset = func() time.Duration {
	now := time.Now().UTC()
	return now.Truncate(24 * time.Hour).Add(12 * time.Hour).Sub(now)
}()

// testNow is the tests' clock.
func testNow() time.Time { return time.Now().Add(testOffset) }

// testClockEnv is the environment entry that gives a subprocess testNow.
func testClockEnv() string { return testClockOffsetEnv + "=" + testOffset.String() }

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		var now func() time.Time
		if off, err := time.ParseDuration(os.Getenv(testClockOffsetEnv)); err == nil {
			now = func() time.Time { return time.Now().Add(off) }
		}
		os.Exit(run(now))
	}
	pgtest.Main(m)
}
