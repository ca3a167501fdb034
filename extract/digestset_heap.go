//go:build !unix

package extract

// allocTable falls back to the Go heap where anonymous mappings are not
// available.
func allocTable(size int) ([]byte, error) { return make([]byte, size), nil }

func freeTable([]byte) error { return nil }
