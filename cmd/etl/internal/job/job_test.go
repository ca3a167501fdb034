package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/transform"
)

// listSource yields keys, then fails with failAt's error if set.
type listSource struct {
	keys   []extract.Key
	i      int
	failAt int
	err    error
}

func (s *listSource) Next(ctx context.Context) (Item, error) {
	if s.err != nil && s.i == s.failAt {
		return Item{}, s.err
	}
	if s.i == len(s.keys) {
		return Item{}, io.EOF
	}
	s.i++
	return Item{Line: int64(s.i + 1), Key: s.keys[s.i-1]}, nil
}

// okClient answers every key with an empty record after an optional delay.
type okClient struct {
	delay time.Duration
	calls atomic.Int64
	mu    sync.Mutex
	seen  map[extract.Key]int
}

func (c *okClient) Query(ctx context.Context, key extract.Key) cms.Result {
	c.calls.Add(1)
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[extract.Key]int{}
	}
	c.seen[key]++
	c.mu.Unlock()
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return cms.Result{Key: key, Class: cms.ClassTransient, Err: ctx.Err()}
	}
	return cms.Result{Key: key, Class: cms.ClassOK, Record: &cms.Record{}, Raw: []byte(`{}`), FetchedAt: time.Now()}
}

// memWarehouse is an in-memory WarehouseSink.
type memWarehouse struct {
	mu   sync.Mutex
	rows []transform.Row
}

func (m *memWarehouse) Commit(ctx context.Context, rows []transform.Row, inTx func(context.Context, pgx.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, rows...)
	if inTx != nil {
		return inTx(ctx, nil)
	}
	return nil
}

func keys(n int, repeat ...int) []extract.Key {
	out := make([]extract.Key, 0, n+len(repeat))
	for i := range n {
		out = append(out, extract.Key{CCID: 1, VDN: 1, CallID: fmt.Sprintf("1700000000-%d", i)})
	}
	for _, r := range repeat {
		out = append(out, out[r])
	}
	return out
}

func newJob(src Source, c pool.Querier) (*Job, *memWarehouse) {
	wh := &memWarehouse{}
	return &Job{RunID: "test", Logger: zerolog.Nop(), Source: src, Client: c, Warehouse: wh,
		Pool: pool.Config{Concurrency: 4}, CommitRows: 10, CommitInterval: time.Second, Grace: time.Second}, wh
}

func TestDedupOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	for _, dedup := range []bool{true, false} {
		t.Run(fmt.Sprint("dedup=", dedup), func(t *testing.T) {
			t.Parallel()
			c := &okClient{}
			j, wh := newJob(&listSource{keys: keys(20, 3, 7)}, c)
			j.Dedup = dedup
			res := j.Run(t.Context())
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if res.Counts.Total() != 22 {
				t.Fatalf("accounted %d of 22 rows: %v", res.Counts.Total(), res.Counts)
			}
			wantDup, wantLoaded := int64(2), int64(20)
			if !dedup {
				// The queue: a key claimed again within a run is queried again.
				wantDup, wantLoaded = 0, 22
			}
			if res.Counts[Duplicate] != wantDup || res.Counts[Loaded] != wantLoaded || int64(len(wh.rows)) != wantLoaded {
				t.Fatalf("counts %v, warehouse rows %d; want %d duplicates, %d loaded", res.Counts, len(wh.rows), wantDup, wantLoaded)
			}
		})
	}
}

func TestSourceErrorAccountsForEveryRowRead(t *testing.T) {
	t.Parallel()
	src := &listSource{keys: keys(100), failAt: 60, err: errors.New("disk on fire")}
	j, _ := newJob(src, &okClient{})
	j.Lookahead = 512 // the 60 rows read are still in the lookahead batch
	res := j.Run(t.Context())
	if res.Err == nil {
		t.Fatal("source error not reported")
	}
	if res.Counts.Total() != 60 || j.Read() != 60 {
		t.Fatalf("read %d, accounted %d (%v); want all 60 accounted", j.Read(), res.Counts.Total(), res.Counts)
	}
	if res.Counts[Unprocessed] != 60 {
		t.Errorf("rows read before the error should be left for the next run: %v", res.Counts)
	}
}

func TestInterruptStopsNewRequestsAtOnce(t *testing.T) {
	t.Parallel()
	c := &okClient{delay: 200 * time.Millisecond}
	j, wh := newJob(&listSource{keys: keys(200)}, c)
	j.Grace = 5 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for c.calls.Load() < 4 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	res := j.Run(ctx)
	if !res.Interrupted {
		t.Fatalf("not reported as interrupted: %v", res.Err)
	}
	// The 4 requests in flight finish within the grace period; nothing new starts.
	if n := c.calls.Load(); n > 4 {
		t.Errorf("%d requests made; want only the 4 in flight at the interrupt", n)
	}
	if res.Counts[Loaded] != int64(len(wh.rows)) || res.Counts[Loaded] == 0 {
		t.Errorf("loaded %d, committed %d: in-flight results must be committed", res.Counts[Loaded], len(wh.rows))
	}
	if res.Counts.Total() != j.Read() {
		t.Errorf("accounted %d of %d rows read", res.Counts.Total(), j.Read())
	}
}

// failingWarehouse fails every commit.
type failingWarehouse struct{}

func (failingWarehouse) Commit(context.Context, []transform.Row, func(context.Context, pgx.Tx) error) error {
	return errors.New("disk full")
}

func TestCommitFailureAbortsAndLeavesRowsUnprocessed(t *testing.T) {
	t.Parallel()
	j, _ := newJob(&listSource{keys: keys(50)}, &okClient{})
	j.Warehouse = failingWarehouse{}
	res := j.Run(t.Context())
	if res.Err == nil {
		t.Fatal("commit failure not reported")
	}
	if res.Counts[Loaded] != 0 || res.Counts.Total() != j.Read() {
		t.Fatalf("counts %v after a failed commit, read %d; want nothing loaded, all accounted", res.Counts, j.Read())
	}
}

// flakyWarehouse holds its first commit until release is closed, then fails
// the second.
type flakyWarehouse struct {
	release chan struct{}
	mu      sync.Mutex
	commits int
	rows    []transform.Row
}

func (w *flakyWarehouse) Commit(ctx context.Context, rows []transform.Row, inTx func(context.Context, pgx.Tx) error) error {
	w.mu.Lock()
	w.commits++
	n := w.commits
	w.mu.Unlock()
	switch n {
	case 1:
		<-w.release
	case 2:
		return errors.New("connection lost")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rows = append(w.rows, rows...)
	return nil
}

// Commits run beside the collector: rows settled while a commit is under
// way go into the next batch, and when a later commit fails, what the
// earlier ones made durable stays counted as loaded and the rest ends
// unprocessed, every row accounted for once.
func TestPipelinedCommitFailureKeepsEarlierCommits(t *testing.T) {
	t.Parallel()
	client := &okClient{}
	j, _ := newJob(&listSource{keys: keys(200)}, client)
	wh := &flakyWarehouse{release: make(chan struct{})}
	j.Warehouse = wh
	go func() {
		// Let the collector fill the next batch while the first commit is held.
		deadline := time.Now().Add(10 * time.Second)
		for client.calls.Load() < int64(j.CommitRows)*2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(wh.release)
	}()
	res := j.Run(t.Context())
	if res.Err == nil {
		t.Fatal("commit failure not reported")
	}
	wh.mu.Lock()
	committed := len(wh.rows)
	wh.mu.Unlock()
	if committed == 0 || res.Counts[Loaded] != int64(committed) {
		t.Errorf("loaded %d, but the warehouse holds %d rows from its first commit", res.Counts[Loaded], committed)
	}
	if res.Counts.Total() != j.Read() || res.Counts[Unprocessed] == 0 {
		t.Errorf("counts %v, read %d: want every row accounted once, the uncommitted ones unprocessed", res.Counts, j.Read())
	}
}

// conflictWarehouse fails its first `conflicts` commits with err after running
// inTx, as PostgreSQL does when it picks the transaction as a deadlock victim.
type conflictWarehouse struct {
	err       error
	conflicts int
	mu        sync.Mutex
	commits   int
	rows      []transform.Row
}

func (w *conflictWarehouse) Commit(ctx context.Context, rows []transform.Row, inTx func(context.Context, pgx.Tx) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.commits++
	if err := inTx(ctx, nil); err != nil {
		return err
	}
	if w.commits <= w.conflicts {
		return fmt.Errorf("commit %d rows: %w", len(rows), w.err)
	}
	w.rows = append(w.rows, rows...)
	return nil
}

// recordingAck records what the job tells the queue.
type recordingAck struct {
	mu      sync.Mutex
	settles int
	ended   []bool
}

func (a *recordingAck) Settle(context.Context, pgx.Tx, []Settlement) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.settles++
	return nil
}

func (a *recordingAck) Settled(_ []Settlement, committed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ended = append(a.ended, committed)
}

// countingLog counts the failures it is asked to record.
type countingLog struct {
	mu       sync.Mutex
	calls    int
	recorded int
}

func (l *countingLog) Record(_ context.Context, _ pgx.Tx, failed []Settlement) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.recorded += len(failed)
	return nil
}

// Issue 9, defect 1: a commit that meets a deadlock or a serialization
// failure is retried as a whole transaction; other errors are not.
func TestConflictingCommitIsRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		conflicts int
		commits   int  // Warehouse.Commit calls
		ok        bool // the run ends without error
	}{
		{"deadlock twice", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, 2, 3, true},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, 1, 2, true},
		{"deadlock every time", &pgconn.PgError{Code: "40P01"}, 99, commitAttempts, false},
		{"other database error", &pgconn.PgError{Code: "23505"}, 1, 1, false},
		{"connection lost", errors.New("unexpected EOF"), 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j, _ := newJob(&listSource{keys: keys(5)}, &okClient{})
			wh := &conflictWarehouse{err: tt.err, conflicts: tt.conflicts}
			ack, fileLog, txLog := &recordingAck{}, &countingLog{}, &countingLog{}
			j.Warehouse, j.Ack, j.Failures, j.TxFailures = wh, ack, []FailureLog{fileLog}, []FailureLog{txLog}
			j.CommitRows = 100
			res := j.Run(t.Context())
			if (res.Err == nil) != tt.ok {
				t.Fatalf("run error %v, want ok=%v", res.Err, tt.ok)
			}
			if wh.commits != tt.commits {
				t.Errorf("%d commits, want %d", wh.commits, tt.commits)
			}
			if ack.settles != tt.commits || len(ack.ended) != tt.commits {
				t.Errorf("Settle called %d times, Settled %d times; want once per commit (%d)", ack.settles, len(ack.ended), tt.commits)
			}
			for i, c := range ack.ended {
				if want := tt.ok && i == len(ack.ended)-1; c != want {
					t.Errorf("Settled #%d committed=%v, want %v", i+1, c, want)
				}
			}
			if fileLog.calls != 1 || txLog.calls != tt.commits {
				t.Errorf("file log recorded %d times, transactional log %d; want once and once per commit (%d)", fileLog.calls, txLog.calls, tt.commits)
			}
			if tt.ok && (res.Counts[Loaded] != 5 || len(wh.rows) != 5) {
				t.Errorf("counts %v, committed %d rows; want all 5 loaded", res.Counts, len(wh.rows))
			}
			if !tt.ok && res.Counts[Unprocessed] != 5 {
				t.Errorf("counts %v; want the 5 rows unprocessed", res.Counts)
			}
		})
	}
}

// blockedWarehouse holds every commit until its context ends, like a
// database where another session holds a lock on the table.
type blockedWarehouse struct{ started chan struct{} }

func (w *blockedWarehouse) Commit(ctx context.Context, _ []transform.Row, _ func(context.Context, pgx.Tx) error) error {
	select {
	case w.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// Issue 9, defect 6: after an interrupt a blocked commit held the run for
// the whole CommitTimeout. It gets Grace + CommitAllowance, then the rows
// are left for the next run.
func TestInterruptBoundsTheLastCommit(t *testing.T) {
	t.Parallel()
	j, _ := newJob(&listSource{keys: keys(30)}, &okClient{})
	wh := &blockedWarehouse{started: make(chan struct{}, 1)}
	j.Warehouse, j.CommitRows = wh, 10
	j.Grace, j.CommitAllowance = 100*time.Millisecond, 300*time.Millisecond
	ctx, interrupt := context.WithCancel(t.Context())
	go func() {
		<-wh.started
		interrupt()
	}()
	start := time.Now()
	res := j.Run(ctx)
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("the run took %s after a blocked commit; want about Grace + CommitAllowance", took)
	}
	if !res.Interrupted || !errors.Is(res.Err, errCommitCut) || !strings.Contains(res.Err.Error(), "rows left for the next run") {
		t.Errorf("result interrupted=%v err=%v; want an interrupted run whose commit was cut off", res.Interrupted, res.Err)
	}
	if res.Counts[Loaded] != 0 || res.Counts.Total() != j.Read() {
		t.Errorf("counts %v, read %d: want nothing loaded and every row accounted for", res.Counts, j.Read())
	}
}

// heldWarehouse blocks every commit until release is closed.
type heldWarehouse struct {
	release chan struct{}
	memWarehouse
}

func (w *heldWarehouse) Commit(ctx context.Context, rows []transform.Row, inTx func(context.Context, pgx.Tx) error) error {
	<-w.release
	return w.memWarehouse.Commit(ctx, rows, inTx)
}

// Progress counts rows as settled when their outcome is known, before any
// commit, so a display is not frozen between commits; at the end Settled
// equals Read and the input is marked exhausted.
func TestProgressCountsSettledRowsBeforeTheirCommit(t *testing.T) {
	t.Parallel()
	j, _ := newJob(&listSource{keys: keys(40, 1)}, &okClient{})
	j.Dedup = true
	j.CommitRows = 1000 // one commit, at the end
	wh := &heldWarehouse{release: make(chan struct{})}
	j.Warehouse = wh
	done := make(chan Result)
	go func() { done <- j.Run(t.Context()) }()

	deadline := time.Now().Add(10 * time.Second)
	var p Progress
	for p = j.Progress(); p.Settled < 41 && time.Now().Before(deadline); p = j.Progress() {
		time.Sleep(time.Millisecond)
	}
	if p.Settled != 41 || p.Done != 0 || !p.InputDone || p.Read != 41 {
		t.Errorf("before the commit: %+v; want 41 settled, 0 done, input done, 41 read", p)
	}
	close(wh.release)
	res := <-done
	end := j.Progress()
	if end.Settled != end.Read || end.Done != res.Counts.Total() || end.Counts[Loaded] != 40 || end.Counts[Duplicate] != 1 {
		t.Errorf("after the run: %+v, result %v; want settled = read = done", end, res.Counts)
	}
}
