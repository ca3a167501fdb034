package parquet

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/cmsetl/cms-etl/load"
	"os"
	"path/filepath"

	"github.com/xitongsys/parquet-go/layout"
	pq "github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/schema"
	"github.com/xitongsys/parquet-go/writer"
)

const (
	// fileBufferSize batches the writer's many small page writes into few
	// syscalls.
	fileBufferSize = 256 << 10
	// maxPendingRows caps the records the writer holds before encoding them.
	// Its own trigger estimates a record at its data bytes (often under 100)
	// while one costs about 700 bytes of Go memory, so it would hold 50,000
	// rows and more; this keeps a file's unencoded rows near 6 MB.
	maxPendingRows = 8192
)

type partOp int

const (
	opWrite partOp = iota
	opCommit
	opAbort
)

type partReq[R any] struct {
	op   partOp
	rows []*R
	done chan<- error
}

// partFile is one open part file. Its goroutine (run) is the only user of
// the parquet writer, which is not safe for concurrent use; the sink talks to
// it through reqs.
type partFile[R any] struct {
	dir       string // partition directory
	tmpPath   string
	finalPath string
	rows      int // rows accepted so far; guarded by the sink's mutex
	reqs      chan partReq[R]
	table     *Table[R]

	// Used only by the goroutine.
	f  *os.File
	bw *bufio.Writer
	pw *writer.ParquetWriter
}

// openPart creates the temporary file and starts its goroutine.
func openPart[R any](t *Table[R], dir, name string, rowGroupSize, pageSize int64, codec pq.CompressionCodec) (*partFile[R], error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create partition directory %s: %w", dir, err)
	}
	p := &partFile[R]{
		dir:       dir,
		tmpPath:   filepath.Join(dir, tmpPrefix+name+tmpSuffix),
		finalPath: filepath.Join(dir, name),
		reqs:      make(chan partReq[R]),
		table:     t,
	}
	f, err := os.OpenFile(p.tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create parquet file: %w", err)
	}
	p.f = f
	p.bw = bufio.NewWriterSize(f, fileBufferSize)
	pw, err := writer.NewParquetWriterFromWriter(p.bw, t.newRecord(), 1)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(p.tmpPath)
		return nil, fmt.Errorf("start parquet writer %s: %w", p.tmpPath, err)
	}
	pw.RowGroupSize = rowGroupSize
	pw.PageSize = pageSize
	pw.CompressionType = codec
	pw.MarshalFunc = func(objs []any, sh *schema.SchemaHandler) (*map[string]*layout.Table, error) {
		return marshalRecords(t, objs, sh)
	}
	p.pw = pw
	go p.run()
	return p, nil
}

// run serves requests until a commit or abort ends the file.
func (p *partFile[R]) run() {
	for req := range p.reqs {
		switch req.op {
		case opWrite:
			req.done <- p.write(req.rows)
		case opCommit:
			req.done <- p.commit()
			return
		case opAbort:
			req.done <- p.abort()
			return
		}
	}
}

func (p *partFile[R]) write(rows []*R) error {
	for _, r := range rows {
		// A copy per row, not one slice per batch: the writer keeps a few
		// values of each page alive until the file is done, and with a
		// shared slice each of those would pin a whole batch.
		if err := p.pw.Write(p.table.hold(r)); err != nil {
			return fmt.Errorf("write parquet file %s: %w", p.tmpPath, err)
		}
		if len(p.pw.Objs) >= maxPendingRows {
			// Encodes pending records into compressed pages; it writes a
			// row group only once RowGroupSize is reached.
			if err := p.pw.Flush(false); err != nil {
				return fmt.Errorf("write parquet file %s: %w", p.tmpPath, err)
			}
			// Flush truncates Objs but keeps the records in its backing
			// array reachable until they are overwritten.
			clear(p.pw.Objs[:cap(p.pw.Objs)])
		}
	}
	return nil
}

// commit finishes the file and moves it to its final name, durably: the
// footer, file data and directory entry are on disk before it returns nil.
// On failure the temporary file is removed; its rows are lost and the sink
// refuses further work.
func (p *partFile[R]) commit() error {
	err := p.finish()
	if err == nil {
		return nil
	}
	if rmErr := os.Remove(p.tmpPath); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("remove %s: %w", p.tmpPath, rmErr))
	}
	return err
}

func (p *partFile[R]) finish() error {
	if err := p.pw.WriteStop(); err != nil {
		_ = p.f.Close()
		return fmt.Errorf("write parquet footer %s: %w", p.tmpPath, err)
	}
	if err := p.bw.Flush(); err != nil {
		_ = p.f.Close()
		return fmt.Errorf("write parquet file %s: %w", p.tmpPath, err)
	}
	if err := p.f.Sync(); err != nil {
		_ = p.f.Close()
		return fmt.Errorf("sync parquet file %s: %w", p.tmpPath, err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("close parquet file %s: %w", p.tmpPath, err)
	}
	if err := os.Rename(p.tmpPath, p.finalPath); err != nil {
		return fmt.Errorf("rename parquet file: %w", err)
	}
	return load.SyncDir(p.dir)
}

func (p *partFile[R]) abort() error {
	err := p.f.Close()
	if err != nil {
		err = fmt.Errorf("close parquet file %s: %w", p.tmpPath, err)
	}
	if rmErr := os.Remove(p.tmpPath); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove parquet file: %w", rmErr))
	}
	return err
}
