package parquet

import (
	"errors"
	"fmt"

	pq "github.com/xitongsys/parquet-go/parquet"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/load"
)

// Config configures the Parquet sink.
type Config struct {
	// Dir is the dataset root; partitions are its call_date=... subdirectories.
	// Required; created if missing.
	Dir string
	// RunID names this run's part files (part-<RunID>-<n>.parquet). Required;
	// see load.ValidateRunID.
	RunID string
	// RowGroupSize bounds the compressed bytes each open file (one per
	// partition with uncommitted rows) buffers before it writes a row group;
	// a file also holds at most 8,192 unencoded rows. Default 8 MiB (the
	// writer's own default of 128 MiB costs about 250 MB RSS per million
	// rows).
	RowGroupSize int64
	// PageSize is the target size of one column page. Default 64 KiB.
	PageSize int64
	// Compression is "zstd" or "snappy". Default "zstd". LZ4 is refused:
	// DuckDB cannot read the legacy codec.
	Compression string
	// Logger receives stale-file cleanup and commit events. Default: disabled.
	Logger zerolog.Logger
}

const (
	defaultRowGroupSize = 8 << 20
	defaultPageSize     = 64 << 10
)

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("parquet config: Dir is empty")
	}
	if err := load.ValidateRunID(c.RunID); err != nil {
		return fmt.Errorf("parquet config: RunID: %w", err)
	}
	if c.RowGroupSize < 0 {
		return fmt.Errorf("parquet config: RowGroupSize %d is negative", c.RowGroupSize)
	}
	if c.PageSize < 0 {
		return fmt.Errorf("parquet config: PageSize %d is negative", c.PageSize)
	}
	if _, err := c.codec(); err != nil {
		return fmt.Errorf("parquet config: Compression: %w", err)
	}
	return nil
}

func (c Config) codec() (pq.CompressionCodec, error) {
	switch c.Compression {
	case "", "zstd":
		return pq.CompressionCodec_ZSTD, nil
	case "snappy":
		return pq.CompressionCodec_SNAPPY, nil
	default:
		return 0, fmt.Errorf("%q is not zstd or snappy", c.Compression)
	}
}

func (c Config) withDefaults() Config {
	if c.RowGroupSize == 0 {
		c.RowGroupSize = defaultRowGroupSize
	}
	if c.PageSize == 0 {
		c.PageSize = defaultPageSize
	}
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	return c
}
