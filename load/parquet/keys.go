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
	pq "github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/reader"
	"github.com/xitongsys/parquet-go/source"

	"github.com/cmsetl/cms-etl/extract"
)

// keyChunkRows is how many rows CommittedKeys decodes per column read; it
// bounds the memory of one file's read whatever the file's size.
const keyChunkRows = 16384

// Filter narrows CommittedKeys to the keys of one input.
type Filter struct {
	// Keep reports whether a key is wanted; nil keeps every key read.
	Keep func(extract.Digest) bool
	// MinCallID and MaxCallID, when MaxCallID is set, bound the input's
	// call IDs in byte order. A file whose call_id statistics show every
	// row group outside the range holds none of them and is not read:
	// call IDs start with the call's time, so a lake's older files drop out.
	MinCallID, MaxCallID string
}

// CommittedStats says how much of DIR CommittedKeys read.
type CommittedStats struct {
	Files, SkippedFiles int // committed files, and those not read thanks to the Filter
	Rows                int // rows read
}

// CommittedKeys returns the digests of the keys (cc_id, vdn, call_id) in
// the committed part files under dir that f accepts (nil accepts all). Only
// those three columns are decoded. Temporary files are ignored: their rows
// were never committed. A missing dir holds no keys. A filter lets a run
// hold only the committed keys of its own input, so memory follows the
// input rather than the lake's history. The caller closes the set.
func CommittedKeys(ctx context.Context, dir string, f *Filter) (*extract.DigestSet, CommittedStats, error) {
	var st CommittedStats
	if f == nil {
		f = &Filter{}
	}
	files, err := committedFiles(dir)
	if err != nil {
		return nil, st, err
	}
	st.Files = len(files)
	keys, err := extract.NewDigestSet(0)
	if err != nil {
		return nil, st, fmt.Errorf("read committed keys: %w", err)
	}
	if err := addKeys(ctx, files, f, keys, &st); err != nil {
		keys.Close()
		return nil, CommittedStats{}, fmt.Errorf("read committed keys: %w", err)
	}
	return keys, st, nil
}

// PartitionKeys adds to keys the digests of the keys in the committed part
// files of one partition of dir, named as Table.Partition names it
// ("call_date=2026-12-01"). Only that directory is read, whatever else the
// dataset holds; a partition that does not exist holds no keys. A reader
// that knows each key's partition (a listed call's follows from its
// listing) can so hold the keys of the partitions it meets, however long
// the dataset's history and however far back those partitions lie.
func PartitionKeys(ctx context.Context, dir, partition string, keys *extract.DigestSet) (CommittedStats, error) {
	var st CommittedStats
	if !strings.HasPrefix(partition, partitionPrefix) || filepath.Base(partition) != partition {
		return st, fmt.Errorf("read committed keys: %q is not a partition", partition)
	}
	files, err := partFiles(filepath.Join(dir, partition))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read committed keys: %w", err)
	}
	st.Files = len(files)
	if err := addKeys(ctx, files, &Filter{}, keys, &st); err != nil {
		return CommittedStats{}, fmt.Errorf("read committed keys of %s: %w", partition, err)
	}
	return st, nil
}

// addKeys reads the key columns of files, a few at once, and adds the
// digests f keeps to keys; st counts what was read.
func addKeys(ctx context.Context, files []string, f *Filter, keys *extract.DigestSet, st *CommittedStats) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, path := range files {
		g.Go(func() error {
			var kept []extract.Digest
			read, err := readKeys(gctx, path, f, func(batch []extract.Digest) error {
				// Filtered outside the lock: Keep only reads.
				kept = kept[:0]
				for _, d := range batch {
					if f.Keep == nil || f.Keep(d) {
						kept = append(kept, d)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				st.Rows += len(batch)
				for _, d := range kept {
					if _, err := keys.Add(d); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil && !read {
				mu.Lock()
				st.SkippedFiles++
				mu.Unlock()
			}
			return err
		})
	}
	return g.Wait()
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
		in, err := partFiles(p)
		if err != nil {
			return nil, fmt.Errorf("read committed keys: %w", err)
		}
		files = append(files, in...)
	}
	return files, nil
}

// partFiles lists the committed part files of one partition directory.
func partFiles(partition string) ([]string, error) {
	entries, err := os.ReadDir(partition)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(name, partPrefix) && strings.HasSuffix(name, partSuffix) {
			files = append(files, filepath.Join(partition, name))
		}
	}
	return files, nil
}

// readKeys decodes the key columns of one file in chunks and hands each
// chunk's digests to add. It reads nothing beyond the footer, and returns
// false, when the footer shows the file holds no call ID in f's range.
func readKeys(ctx context.Context, path string, f *Filter, add func([]extract.Digest) error) (read bool, err error) {
	pf, err := openLocal(path)
	if err != nil {
		return false, err
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
		return false, fmt.Errorf("read parquet footer %s: %w", path, err)
	}
	defer pr.ReadStop()
	if f.MaxCallID != "" && !mayHoldCallIDs(pr.Footer, f.MinCallID, f.MaxCallID) {
		return false, nil
	}

	root := pr.SchemaHandler.GetRootExName()
	col := func(name string) string { return common.PathToStr([]string{root, name}) }
	digests := make([]extract.Digest, 0, keyChunkRows)
	for left := pr.GetNumRows(); left > 0; {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		n := min(left, keyChunkRows)
		ccIDs, _, _, err := pr.ReadColumnByPath(col("cc_id"), n)
		if err != nil {
			return true, fmt.Errorf("read cc_id of %s: %w", path, err)
		}
		vdns, _, _, err := pr.ReadColumnByPath(col("vdn"), n)
		if err != nil {
			return true, fmt.Errorf("read vdn of %s: %w", path, err)
		}
		callIDs, _, _, err := pr.ReadColumnByPath(col("call_id"), n)
		if err != nil {
			return true, fmt.Errorf("read call_id of %s: %w", path, err)
		}
		if int64(len(ccIDs)) != n || len(vdns) != len(ccIDs) || len(callIDs) != len(ccIDs) {
			return true, fmt.Errorf("read keys of %s: got %d/%d/%d values for %d rows", path, len(ccIDs), len(vdns), len(callIDs), n)
		}
		digests = digests[:0]
		for i := range ccIDs {
			cc, ok1 := ccIDs[i].(int32)
			vdn, ok2 := vdns[i].(int32)
			id, ok3 := callIDs[i].(string)
			if !ok1 || !ok2 || !ok3 {
				return true, fmt.Errorf("read keys of %s: row has types %T/%T/%T, want int32/int32/string", path, ccIDs[i], vdns[i], callIDs[i])
			}
			digests = append(digests, extract.Key{CCID: int(cc), VDN: int(vdn), CallID: id}.Digest())
		}
		if err := add(digests); err != nil {
			return true, err
		}
		left -= n
	}
	return true, nil
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

// mayHoldCallIDs reports whether any row group's call_id statistics overlap
// [lo, hi] in byte order, the order the writer computes them in. A row group
// without statistics may hold anything.
func mayHoldCallIDs(footer *pq.FileMetaData, lo, hi string) bool {
	for _, rg := range footer.GetRowGroups() {
		var stats *pq.Statistics
		for _, c := range rg.GetColumns() {
			// The writer records the path in its Go spelling ("Call_id").
			if md := c.GetMetaData(); md != nil && len(md.PathInSchema) > 0 && strings.EqualFold(md.PathInSchema[len(md.PathInSchema)-1], "call_id") {
				stats = md.GetStatistics()
			}
		}
		if stats == nil {
			return true
		}
		minV, maxV := stats.GetMinValue(), stats.GetMaxValue()
		if minV == nil || maxV == nil {
			minV, maxV = stats.GetMin(), stats.GetMax()
		}
		if minV == nil || maxV == nil || string(minV) <= hi && string(maxV) >= lo {
			return true
		}
	}
	return false
}
