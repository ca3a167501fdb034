package cli

import (
	"os"
	"testing"

	"github.com/cmsetl/cms-etl/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		os.Exit(Run())
	}
	pgtest.Main(m)
}
