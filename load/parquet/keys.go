package parquet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/xitongsys/parquet-go/common"
	"github.com/xitongsys/parquet-go/reader"
	"github.com/xitongsys/parquet-go/source"

	"github.com/cmsetl/cms-etl/extract"
)

// keyChunkRows is how many rows CommittedKeys decodes per column read; it
// bounds the memory of one file's read whatever the file's size.
const keyChunkRows = 16384

// CommittedKeys returns the digests of the keys (cc_id, vdn, call_id) in
// every committed part file under dir that keep accepts (nil keeps all), and
// the number of rows read. Only those three columns are decoded. Temporary
// files are ignored: their rows were never committed. A missing dir holds no
// keys. keep lets a run hold only the committed keys of its own input, so
// memory follows the input rather than the lake's history. The caller closes
// the set.
func CommittedKeys(ctx context.Context, dir string, keep func(extract.Digest) bool) (*extract.DigestSet, int, error) {
	files, err := committedFiles(dir)
	if err != nil {
		return nil, 0, err
	}
	keys, err := extract.NewDigestSet(0)
	if err != nil {
		return nil, 0, fmt.Errorf("read committed keys: %w", err)
	}
	var (
		mu    sync.Mutex
		total int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, path := range files {
		g.Go(func() error {
			return readKeys(gctx, path, func(batch []extract.Digest) error {
				mu.Lock()
				defer mu.Unlock()
				total += len(batch)
				for _, d := range batch {
					if keep != nil && !keep(d) {
						continue
					}
					if _, err := keys.Add(d); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		keys.Close()
		return nil, 0, fmt.Errorf("read committed keys: %w", err)
	}
	return keys, total, nil
}

// HasCommitted reports whether dir holds any committed part file.
func HasCommitted(dir string) (bool, error) {
	files, err := committedFiles(dir)
	return len(files) > 0, err
}

// committedFiles lists DIR/call_date=*/part-*.parquet.
func committedFiles(dir string) ([]string, error) {
	parts, err := partitionDirs(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read committed keys: %w", err)
	}
	var files []string
	for _, p := range parts {
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read committed keys: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.Type().IsRegular() && strings.HasPrefix(name, partPrefix) && strings.HasSuffix(name, partSuffix) {
				files = append(files, filepath.Join(p, name))
			}
		}
	}
	return files, nil
}

// readKeys decodes the key columns of one file in chunks and hands each
// chunk's digests to add.
func readKeys(ctx context.Context, path string, add func([]extract.Digest) error) (err error) {
	pf, err := openLocal(path)
	if err != nil {
		return err
	}
	defer func() {
		// The reader panics on some malformed files; report that as an
		// error naming the file rather than crash the job.
		if r := recover(); r != nil {
			err = fmt.Errorf("read parquet file %s: %v", path, r)
		}
		if cerr := pf.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	pr, err := reader.NewParquetColumnReader(pf, 1)
	if err != nil {
		return fmt.Errorf("read parquet footer %s: %w", path, err)
	}
	defer pr.ReadStop()

	root := pr.SchemaHandler.GetRootExName()
	col := func(name string) string { return common.PathToStr([]string{root, name}) }
	digests := make([]extract.Digest, 0, keyChunkRows)
	for left := pr.GetNumRows(); left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(left, keyChunkRows)
		ccIDs, _, _, err := pr.ReadColumnByPath(col("cc_id"), n)
		if err != nil {
			return fmt.Errorf("read cc_id of %s: %w", path, err)
		}
		vdns, _, _, err := pr.ReadColumnByPath(col("vdn"), n)
		if err != nil {
			return fmt.Errorf("read vdn of %s: %w", path, err)
		}
		callIDs, _, _, err := pr.ReadColumnByPath(col("call_id"), n)
		if err != nil {
			return fmt.Errorf("read call_id of %s: %w", path, err)
		}
		if int64(len(ccIDs)) != n || len(vdns) != len(ccIDs) || len(callIDs) != len(ccIDs) {
			return fmt.Errorf("read keys of %s: got %d/%d/%d values for %d rows", path, len(ccIDs), len(vdns), len(callIDs), n)
		}
		digests = digests[:0]
		for i := range ccIDs {
			cc, ok1 := ccIDs[i].(int32)
			vdn, ok2 := vdns[i].(int32)
			id, ok3 := callIDs[i].(string)
			if !ok1 || !ok2 || !ok3 {
				return fmt.Errorf("read keys of %s: row has types %T/%T/%T, want int32/int32/string", path, ccIDs[i], vdns[i], callIDs[i])
			}
			digests = append(digests, extract.Key{CCID: int(cc), VDN: int(vdn), CallID: id}.Digest())
		}
		if err := add(digests); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// localFile is the read side of source.ParquetFile on the local disk (the
// parquet-go-source module would pull every cloud backend into go.sum). The
// column reader re-opens the file once per column it reads.
type localFile struct {
	*os.File
	path string
}

func openLocal(path string) (*localFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open parquet file: %w", err)
	}
	return &localFile{File: f, path: path}, nil
}

func (f *localFile) Open(name string) (source.ParquetFile, error) {
	if name == "" {
		name = f.path
	}
	return openLocal(name)
}

func (f *localFile) Create(string) (source.ParquetFile, error) {
	return nil, errors.New("parquet file opened read-only")
}
