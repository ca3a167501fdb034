// Package load holds the outputs of the job (parquet, postgres, rejects) and
// what they share.
package load

import (
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
