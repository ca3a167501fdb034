package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
