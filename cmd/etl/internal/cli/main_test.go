package cli

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		os.Exit(Run())
	}
	os.Exit(m.Run())
}
