package adapters

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/load/parquet"
)

// CommittedKeys reads which keys the dataset in dir already holds, for a
// rerun to skip. With a regular file as input (opened as input, configured
// as cfg) and a non-empty dir it first reads the file once for its keys and
// keeps only those: memory then follows the input, not the lake's history,
// and files whose call IDs lie outside the input's are not read beyond
// their footer. Inputs that can be read only once (stdin, pipes; input nil
// for the queue), a file that changed since the run opened it, or a
// pre-read that failed keep every committed key. The caller closes the set.
func CommittedKeys(ctx context.Context, dir string, input *csvsource.Reader, cfg csvsource.Config, log zerolog.Logger) (*extract.DigestSet, parquet.CommittedStats, error) {
	var filter *parquet.Filter
	if input != nil && input.RegularFile() != nil {
		has, err := parquet.HasCommitted(dir)
		if err != nil {
			return nil, parquet.CommittedStats{}, fmt.Errorf("read committed keys in %s: %w", dir, err)
		}
		if has {
			in, err := csvKeys(ctx, cfg)
			switch {
			case ctx.Err() != nil:
				if in.set != nil {
					in.set.Close()
				}
				return nil, parquet.CommittedStats{}, fmt.Errorf("read the keys of %s: %w", cfg.Path, ctx.Err())
			case err != nil:
				// The run itself reports the problem with its line.
				log.Warn().Err(err).Msg("could not read the input's keys ahead; keeping every committed key in memory")
			case !sameFile(input.RegularFile(), cfg.Path):
				in.set.Close()
				log.Warn().Str("input", cfg.Path).Msg("the input changed while its keys were read; keeping every committed key in memory")
			case in.set.Len() == 0:
				// No valid key: nothing committed can match.
				return in.set, parquet.CommittedStats{}, nil
			default:
				defer in.set.Close()
				filter = &parquet.Filter{Keep: in.set.Has, MinCallID: in.minCallID, MaxCallID: in.maxCallID}
			}
		}
	}
	committed, st, err := parquet.CommittedKeys(ctx, dir, filter)
	if err != nil {
		return nil, st, fmt.Errorf("read committed keys in %s: %w", dir, err)
	}
	return committed, st, nil
}

// sameFile reports whether path is still the file opened, unchanged.
func sameFile(opened os.FileInfo, path string) bool {
	now, err := os.Stat(path)
	return err == nil && os.SameFile(opened, now) && now.Size() == opened.Size() && now.ModTime().Equal(opened.ModTime())
}

// inputKeys are the valid keys of a CSV file and the range of their call IDs
// in byte order.
type inputKeys struct {
	set                  *extract.DigestSet
	minCallID, maxCallID string
}

// csvKeys reads the keys of a CSV file; bad rows are skipped here and
// reported by the run itself.
func csvKeys(ctx context.Context, cfg csvsource.Config) (inputKeys, error) {
	r, err := csvsource.Open(cfg)
	if err != nil {
		return inputKeys{}, err
	}
	defer r.Close()
	in := inputKeys{}
	if in.set, err = extract.NewDigestSet(0); err != nil {
		return inputKeys{}, err
	}
	for k, err := range r.Keys(nil) {
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			if in.set.Len() == 0 || k.CallID < in.minCallID {
				in.minCallID = strings.Clone(k.CallID)
			}
			if in.set.Len() == 0 || k.CallID > in.maxCallID {
				in.maxCallID = strings.Clone(k.CallID)
			}
			_, err = in.set.Add(k.Digest())
		}
		if err != nil {
			in.set.Close()
			return inputKeys{}, err
		}
	}
	return in, nil
}
