// Package parquet writes rows of one table (transform's row types; see
// Table) to a Hive-partitioned Parquet dataset:
// DIR/call_date=YYYY-MM-DD/part-<run>-<n>.parquet.
//
// Rows go to temporary files (.part-*.parquet.tmp) that Commit finishes,
// syncs and renames, so a reader never sees a partial file and every row
// written before a successful Commit is durable. CommittedKeys reads the
// keys of committed files back, which lets a rerun skip finished work. One
// run at a time owns DIR, through an flock on DIR/.etl.lock.
package parquet

import (
	"context"
	"errors"
	"fmt"
	"github.com/cmsetl/cms-etl/load"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	pq "github.com/xitongsys/parquet-go/parquet"

	"github.com/rs/zerolog"
)

// File names inside DIR.
const (
	lockName   = ".etl.lock"
	partPrefix = "part-"
	partSuffix = ".parquet"
	tmpPrefix  = "."
	tmpSuffix  = ".tmp"
)

// ErrLocked reports that another run holds the output directory.
var ErrLocked = errors.New("output directory is in use by another run")

type lockedError struct {
	dir, lock, pid string
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("output directory %s is in use by another run (lock %s held by pid %s)", e.dir, e.lock, e.pid)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// CommitInfo describes one Commit.
type CommitInfo struct {
	Files []string // final paths of the files made visible, sorted
	Rows  int      // rows in those files
}

// Sink writes rows of one table to part files. Its methods may be called
// from several goroutines; they serialize on one mutex.
type Sink[R any] struct {
	table *Table[R]
	cfg   Config
	codec pq.CompressionCodec
	log   zerolog.Logger
	lock  *os.File

	mu     sync.Mutex
	open   map[string]*partFile[R] // by partition directory name
	next   int                     // number of the next part file in this run
	synced map[string]bool         // partitions whose entry in Dir is durable
	err    error                   // first write failure; the sink refuses further work
	closed bool
}

// Open locks cfg.Dir, checks that it holds t's dataset (or none), deletes
// temporary files a crashed run left behind and returns a sink ready for
// Write. It fails with an error wrapping ErrLocked when another run holds the
// directory.
func Open[R any](ctx context.Context, cfg Config, t *Table[R]) (*Sink[R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	codec, _ := cfg.codec() // validated above
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	lock, err := acquireLock(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := claimDataset(cfg.Dir, t.Name); err != nil {
		return nil, errors.Join(err, releaseLock(lock))
	}
	s := &Sink[R]{
		table:  t,
		cfg:    cfg,
		codec:  codec,
		log:    cfg.Logger,
		lock:   lock,
		open:   make(map[string]*partFile[R]),
		synced: make(map[string]bool),
	}
	if err := s.scan(ctx); err != nil {
		return nil, errors.Join(err, releaseLock(lock))
	}
	return s, nil
}

// datasetFile names, inside DIR, the table whose dataset DIR holds: one
// directory is one dataset, so readers see one schema.
const datasetFile = ".etl-dataset"

// legacyDataset is the table of directories written before datasetFile
// existed: only call_info was written then.
const legacyDataset = "call_info"

// claimDataset checks that DIR holds table's dataset or none, and records
// table as DIR's dataset. The caller holds DIR's lock.
func claimDataset(dir, table string) error {
	path := filepath.Join(dir, datasetFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if got := strings.TrimSpace(string(b)); got != table {
			return fmt.Errorf("output directory %s holds the %s dataset (see %s); write %s to another directory", dir, got, path, table)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	if table != legacyDataset {
		has, err := HasCommitted(dir)
		if err != nil {
			return err
		}
		if has {
			return fmt.Errorf("output directory %s holds the %s dataset (Parquet files without %s); write %s to another directory", dir, legacyDataset, datasetFile, table)
		}
	}
	tmp := path + tmpSuffix
	if err := writeSynced(tmp, []byte(table+"\n")); err != nil {
		return fmt.Errorf("record dataset of %s: %w", dir, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("record dataset of %s: %w", dir, err)
	}
	return load.SyncDir(dir)
}

// writeSynced writes a small file and syncs it, so that a rename after it
// never exposes an empty file after a crash.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// acquireLock takes an exclusive flock on DIR/.etl.lock and records our pid
// in it. The kernel drops the lock when the process dies, so a killed run
// never leaves a stale lock; the file itself stays (removing it would let two
// runs lock different inodes).
func acquireLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &lockedError{dir: dir, lock: path, pid: readPID(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("write pid to %s: %w", path, err), releaseLock(f))
	}
	return f, nil
}

func readPID(path string) string {
	b, err := os.ReadFile(path)
	if pid := strings.TrimSpace(string(b)); err == nil && pid != "" {
		return pid
	}
	return "unknown"
}

func releaseLock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err != nil {
		err = fmt.Errorf("unlock %s: %w", f.Name(), err)
	}
	if cerr := f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close lock file: %w", cerr))
	}
	return err
}

// scan deletes leftover temporary files (never committed, so their rows were
// never acknowledged) and continues the part numbering after any committed
// file of the same run id, so a reused run id never overwrites a file.
func (s *Sink[R]) scan(ctx context.Context) error {
	parts, err := partitionDirs(s.cfg.Dir)
	if err != nil {
		return err
	}
	runPrefix := partPrefix + s.cfg.RunID + "-"
	removed := 0
	for _, dir := range parts {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan output directory: %w", err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("scan output directory: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			switch {
			case strings.HasPrefix(name, tmpPrefix+partPrefix) && strings.HasSuffix(name, partSuffix+tmpSuffix):
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					return fmt.Errorf("remove stale temporary file: %w", err)
				}
				removed++
			case strings.HasPrefix(name, runPrefix) && strings.HasSuffix(name, partSuffix):
				n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, runPrefix), partSuffix))
				if err == nil && n >= s.next {
					s.next = n + 1
				}
			}
		}
	}
	if removed > 0 {
		s.log.Info().Int("files", removed).Str("dir", s.cfg.Dir).Msg("removed uncommitted parquet files of an earlier run")
	}
	return nil
}

// partitionDirs lists the call_date=* directories under dir.
func partitionDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), partitionPrefix) {
			dirs = append(dirs, filepath.Join(dir, e.Name()))
		}
	}
	return dirs, nil
}

func (s *Sink[R]) usable() error {
	if s.closed {
		return errors.New("parquet sink is closed")
	}
	if s.err != nil {
		return fmt.Errorf("parquet sink unusable after an earlier failure: %w", s.err)
	}
	return nil
}

// Write appends rows to the current part file of each row's partition,
// opening files as needed. Rows may be reused by the caller once Write
// returns. After an error the sink is unusable (some rows of the batch may
// be in files, some not): only Close remains.
func (s *Sink[R]) Write(ctx context.Context, rows []R) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	groups := make(map[string][]*R)
	var order []string
	for i := range rows {
		p := s.table.partition(&rows[i])
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], &rows[i])
	}
	for _, p := range order {
		if s.open[p] != nil {
			continue
		}
		name := fmt.Sprintf("%s%s-%05d%s", partPrefix, s.cfg.RunID, s.next, partSuffix)
		pf, err := openPart(s.table, filepath.Join(s.cfg.Dir, p), name, s.cfg.RowGroupSize, s.cfg.PageSize, s.codec)
		if err != nil {
			s.err = err
			return err
		}
		s.next++
		s.open[p] = pf
	}
	// Each file's goroutine encodes its share concurrently. Write waits for
	// all of them even if ctx ends: they read the caller's rows, and local
	// file writes finish on their own.
	done := make(chan error, len(order))
	for _, p := range order {
		s.open[p].reqs <- partReq[R]{op: opWrite, rows: groups[p], done: done}
	}
	var errs []error
	for range order {
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.err = err
		return err
	}
	for _, p := range order {
		s.open[p].rows += len(groups[p])
	}
	return nil
}

// Commit finishes every open part file and gives it its final name. When it
// returns nil, every row written before it is durable in a final file; rows
// written afterwards go to new part files. After an error the sink is
// unusable; files listed in the returned CommitInfo were committed all the
// same.
func (s *Sink[R]) Commit(ctx context.Context) (CommitInfo, error) {
	if err := ctx.Err(); err != nil {
		return CommitInfo{}, fmt.Errorf("commit parquet files: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return CommitInfo{}, err
	}
	if len(s.open) == 0 {
		return CommitInfo{}, nil
	}
	type result struct {
		partition string
		pf        *partFile[R]
		err       error
	}
	results := make(chan result, len(s.open))
	for p, pf := range s.open {
		go func() {
			done := make(chan error, 1)
			pf.reqs <- partReq[R]{op: opCommit, done: done}
			results <- result{partition: p, pf: pf, err: <-done}
		}()
	}
	var (
		info    CommitInfo
		errs    []error
		newDirs bool
	)
	for range len(s.open) {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		info.Files = append(info.Files, r.pf.finalPath)
		info.Rows += r.pf.rows
		if !s.synced[r.partition] {
			newDirs = true
			s.synced[r.partition] = true
		}
	}
	clear(s.open)
	slices.Sort(info.Files)
	if newDirs {
		// A partition directory created in this run must itself be durable
		// for the files in it to be.
		if err := load.SyncDir(s.cfg.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.err = err
		return info, fmt.Errorf("commit parquet files: %w", err)
	}
	s.log.Debug().Int("files", len(info.Files)).Int("rows", info.Rows).Msg("committed parquet files")
	return info, nil
}

// Close discards the open part files (it does not commit them: the job
// commits before a clean end) and releases the directory lock. Later calls
// return nil. It only removes local files, so it does not consult ctx.
func (s *Sink[R]) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	discarded := 0
	for _, p := range slices.Sorted(maps.Keys(s.open)) {
		pf := s.open[p]
		done := make(chan error, 1)
		pf.reqs <- partReq[R]{op: opAbort, done: done}
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
		discarded += pf.rows
	}
	clear(s.open)
	if discarded > 0 {
		s.log.Warn().Int("rows", discarded).Msg("closed parquet sink with uncommitted rows; they were discarded")
	}
	if err := releaseLock(s.lock); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close parquet sink: %w", err)
	}
	return nil
}
