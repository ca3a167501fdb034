// Package load holds the outputs of the job (parquet, postgres, rejects) and
// what they share.
package load

import (
	"errors"
	"fmt"
	"os"
)

// SyncDir makes the directory's entries (a rename, a new file or
// subdirectory) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for sync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// MaxRunIDLen bounds a run id, which becomes part of file names.
const MaxRunIDLen = 100

// ValidateRunID keeps a run id usable inside a file name on every
// filesystem and unambiguous in part-<run>-<n> and _rejects/<run>.csv: a
// letter or digit, then letters, digits, '.', '_' and '-', at most
// MaxRunIDLen characters.
func ValidateRunID(id string) error {
	if id == "" {
		return errors.New("is empty")
	}
	if len(id) > MaxRunIDLen {
		return fmt.Errorf("%q is longer than %d characters", id, MaxRunIDLen)
	}
	for i, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("%q: use letters, digits, '.', '_' and '-', starting with a letter or digit", id)
		}
	}
	return nil
}
