package pipeline

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

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/outcome"
)

// The pipeline's collaborators are faked here: these tests drive the
// commit protocol and the accounting through failures no real output makes
// on demand. The adapters over Parquet, PostgreSQL and the queue are tested
// against the real things (package adapters and the command's tests).

// row is the test's row type: the key it was made for.
type row struct{ key extract.Key }

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

// okQuery answers every key as loaded after an optional delay.
type okQuery struct {
	delay time.Duration
	calls atomic.Int64
}

func (q *okQuery) query(ctx context.Context, it Item) (Answer[row], pool.Verdict, error) {
	q.calls.Add(1)
	select {
	case <-time.After(q.delay):
	case <-ctx.Done():
		return Answer[row]{Outcome: outcome.Failed, Retry: true}, pool.Transient, ctx.Err()
	}
	return Answer[row]{Outcome: outcome.Loaded, Row: row{it.Key}, Attempts: 1}, pool.Answered, nil
}

// rowStore keeps the rows an output committed.
type rowStore struct {
	mu   sync.Mutex
	rows []row
}

func (m *rowStore) store(ctx context.Context, rows []row, also func(context.Context, any) error) error {
	if also != nil {
		if err := also(ctx, "tx"); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, rows...)
	return nil
}

func (m *rowStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// memOutput is an in-memory transactional output.
type memOutput struct {
	rowStore
	// commit, when set, replaces the commit (see the failing outputs).
	commit func(ctx context.Context, rows []row, also func(context.Context, any) error) error
}

func (m *memOutput) Name() string { return "memory" }

func (m *memOutput) Commit(ctx context.Context, rows []row) (int, error) {
	return 0, m.CommitWith(ctx, rows, nil)
}

func (m *memOutput) CommitWith(ctx context.Context, rows []row, also func(context.Context, any) error) error {
	if m.commit != nil {
		return m.commit(ctx, rows, also)
	}
	return m.store(ctx, rows, also)
}

// fileOutput is an in-memory output that is not transactional; it holds
// the keys listed in held, and notes its commits.
type fileOutput struct {
	rowStore
	held map[extract.Key]bool
	note func(string)
}

func (f *fileOutput) Name() string { return "files" }

func (f *fileOutput) Commit(ctx context.Context, rows []row) (int, error) {
	if f.note != nil {
		f.note("files")
	}
	return 1, f.store(ctx, rows, nil)
}

func (f *fileOutput) Holds(_ context.Context, items []Item) ([]bool, error) {
	out := make([]bool, len(items))
	for i, it := range items {
		out[i] = f.held[it.Key]
	}
	return out, nil
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

func config(src Source, q *okQuery, outs ...Output[row]) Config[row] {
	if len(outs) == 0 {
		outs = []Output[row]{&memOutput{}}
	}
	return Config[row]{RunID: "test", Logger: zerolog.Nop(), Source: src, Query: q.query, Outputs: outs,
		Pool: pool.Config{Concurrency: 4}, CommitRows: 10, CommitInterval: time.Second, Grace: time.Second}
}

func run(t *testing.T, ctx context.Context, cfg Config[row]) (*Pipeline[row], Result) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Run(ctx)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := config(&listSource{}, &okQuery{})
	tests := []struct {
		name   string
		change func(*Config[row])
		want   string
	}{
		{"ok", func(*Config[row]) {}, ""},
		{"no source", func(c *Config[row]) { c.Source = nil }, "Source"},
		{"no query", func(c *Config[row]) { c.Query = nil }, "Query"},
		{"no outputs", func(c *Config[row]) { c.Outputs = nil }, "Outputs"},
		{"two transactional outputs", func(c *Config[row]) { c.Outputs = []Output[row]{&memOutput{}, &memOutput{}} }, "transactional"},
		{"negative", func(c *Config[row]) { c.CommitRows = -1 }, "negative"},
		{"pool", func(c *Config[row]) { c.Pool.Concurrency = 5000 }, "concurrency"},
	}
	for _, tt := range tests {
		c := ok
		tt.change(&c)
		err := c.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestDedupOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	for _, dedup := range []bool{true, false} {
		t.Run(fmt.Sprint("dedup=", dedup), func(t *testing.T) {
			t.Parallel()
			out := &memOutput{}
			cfg := config(&listSource{keys: keys(20, 3, 7)}, &okQuery{}, out)
			cfg.Dedup = dedup
			_, res := run(t, t.Context(), cfg)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if res.Counts.Total() != 22 || res.Read != 22 {
				t.Fatalf("accounted %d of 22 rows: %v", res.Counts.Total(), res.Counts)
			}
			wantDup, wantLoaded := int64(2), int64(20)
			if !dedup {
				// The queue: a key claimed again within a run is queried again.
				wantDup, wantLoaded = 0, 22
			}
			if res.Counts[outcome.Duplicate] != wantDup || res.Counts[outcome.Loaded] != wantLoaded || int64(out.count()) != wantLoaded {
				t.Fatalf("counts %v, output rows %d; want %d duplicates, %d loaded", res.Counts, out.count(), wantDup, wantLoaded)
			}
		})
	}
}

// Outputs are a list: each gets the rows it does not hold yet, a key every
// output holds is not asked at all, and files committed are counted.
func TestOutputsGetWhatTheyLack(t *testing.T) {
	t.Parallel()
	ks := keys(30)
	files := &fileOutput{held: map[extract.Key]bool{ks[0]: true, ks[1]: true, ks[2]: true}}
	wh := &fileOutput{held: map[extract.Key]bool{ks[1]: true, ks[2]: true, ks[3]: true}}
	q := &okQuery{}
	cfg := config(&listSource{keys: ks}, q, files, wh)
	_, res := run(t, t.Context(), cfg)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Counts[outcome.AlreadyLoaded] != 2 || res.Counts[outcome.Loaded] != 28 || q.calls.Load() != 28 {
		t.Fatalf("counts %v, %d calls; want keys 1 and 2 (held by both) not asked", res.Counts, q.calls.Load())
	}
	if files.count() != 27 || wh.count() != 27 {
		t.Fatalf("files got %d rows, warehouse %d; want each the 27 it lacks", files.count(), wh.count())
	}
	if res.Files == 0 {
		t.Error("files committed not counted")
	}
}

func TestSourceErrorAccountsForEveryRowRead(t *testing.T) {
	t.Parallel()
	src := &listSource{keys: keys(100), failAt: 60, err: errors.New("disk on fire")}
	cfg := config(src, &okQuery{})
	cfg.Lookahead = 512 // the 60 rows read are still in the lookahead batch
	_, res := run(t, t.Context(), cfg)
	if res.Err == nil {
		t.Fatal("source error not reported")
	}
	if res.Counts.Total() != 60 || res.Read != 60 {
		t.Fatalf("read %d, accounted %d (%v); want all 60 accounted", res.Read, res.Counts.Total(), res.Counts)
	}
	if res.Counts[outcome.Unprocessed] != 60 {
		t.Errorf("rows read before the error should be left for the next run: %v", res.Counts)
	}
}

func TestInterruptStopsNewRequestsAtOnce(t *testing.T) {
	t.Parallel()
	q := &okQuery{delay: 200 * time.Millisecond}
	out := &memOutput{}
	cfg := config(&listSource{keys: keys(200)}, q, out)
	cfg.Grace = 5 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for q.calls.Load() < 4 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, res := run(t, ctx, cfg)
	if !res.Interrupted {
		t.Fatalf("not reported as interrupted: %v", res.Err)
	}
	// The 4 calls in flight finish within the grace period; nothing new starts.
	if n := q.calls.Load(); n > 4 {
		t.Errorf("%d calls made; want only the 4 in flight at the interrupt", n)
	}
	if res.Counts[outcome.Loaded] != int64(out.count()) || res.Counts[outcome.Loaded] == 0 {
		t.Errorf("loaded %d, committed %d: in-flight results must be committed", res.Counts[outcome.Loaded], out.count())
	}
	if res.Counts.Total() != res.Read {
		t.Errorf("accounted %d of %d rows read", res.Counts.Total(), res.Read)
	}
}

func TestCommitFailureAbortsAndLeavesRowsUnprocessed(t *testing.T) {
	t.Parallel()
	out := &memOutput{commit: func(context.Context, []row, func(context.Context, any) error) error { return errors.New("disk full") }}
	_, res := run(t, t.Context(), config(&listSource{keys: keys(50)}, &okQuery{}, out))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "commit memory: disk full") {
		t.Fatalf("commit failure reported as %v", res.Err)
	}
	if res.Counts[outcome.Loaded] != 0 || res.Counts.Total() != res.Read {
		t.Fatalf("counts %v after a failed commit, read %d; want nothing loaded, all accounted", res.Counts, res.Read)
	}
}

// Commits run beside the collector: rows settled while a commit is under
// way go into the next batch, and when a later commit fails, what the
// earlier ones made durable stays counted as loaded and the rest ends
// unprocessed, every row accounted for once.
func TestPipelinedCommitFailureKeepsEarlierCommits(t *testing.T) {
	t.Parallel()
	q := &okQuery{}
	release := make(chan struct{})
	var commits atomic.Int64
	out := &memOutput{}
	out.commit = func(ctx context.Context, rows []row, also func(context.Context, any) error) error {
		switch commits.Add(1) {
		case 1:
			<-release
		case 2:
			return errors.New("connection lost")
		}
		return out.store(ctx, rows, also)
	}
	cfg := config(&listSource{keys: keys(200)}, q, out)
	go func() {
		// Let the collector fill the next batch while the first commit is held.
		deadline := time.Now().Add(10 * time.Second)
		for q.calls.Load() < int64(cfg.CommitRows)*2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(release)
	}()
	_, res := run(t, t.Context(), cfg)
	if res.Err == nil {
		t.Fatal("commit failure not reported")
	}
	if committed := out.count(); committed == 0 || res.Counts[outcome.Loaded] != int64(committed) {
		t.Errorf("loaded %d, but the output holds %d rows from its first commit", res.Counts[outcome.Loaded], committed)
	}
	if res.Counts.Total() != res.Read || res.Counts[outcome.Unprocessed] == 0 {
		t.Errorf("counts %v, read %d: want every row accounted once, the uncommitted ones unprocessed", res.Counts, res.Read)
	}
}

// recordingLedger records what the pipeline tells it.
type recordingLedger struct {
	inTx     bool
	mu       sync.Mutex
	records  int
	txs      []any
	failed   int
	confirms []bool
	settled  []Settlement
}

func (l *recordingLedger) InTx() bool { return l.inTx }

func (l *recordingLedger) Record(_ context.Context, tx any, settled []Settlement) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records++
	l.txs = append(l.txs, tx)
	l.settled = append(l.settled, settled...)
	for _, s := range settled {
		if s.Outcome == outcome.Failed || s.Outcome == outcome.Rejected {
			l.failed++
		}
	}
	return nil
}

func (l *recordingLedger) Confirm(_ []Settlement, committed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.confirms = append(l.confirms, committed)
}

// The commit protocol: files first, then the ledgers outside the
// transaction, then the transactional output with the ledgers that live in
// its database; every ledger hears every batch and Confirmers whether it
// committed. Without a transactional output every ledger records on its own.
func TestCommitProtocol(t *testing.T) {
	t.Parallel()
	for _, withTx := range []bool{true, false} {
		t.Run(fmt.Sprint("transactional output: ", withTx), func(t *testing.T) {
			t.Parallel()
			var order []string
			var mu sync.Mutex
			note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
			files := &fileOutput{note: note}
			db := &memOutput{}
			db.commit = func(ctx context.Context, rows []row, also func(context.Context, any) error) error {
				note("db")
				return db.store(ctx, rows, also)
			}
			fileLedger, txLedger := &recordingLedger{}, &recordingLedger{inTx: true}
			outs := []Output[row]{files}
			if withTx {
				outs = append(outs, db)
			}
			cfg := config(&listSource{keys: keys(25)}, &okQuery{}, outs...)
			cfg.Ledgers = []Ledger{noteLedger{fileLedger, note}, txLedger}
			cfg.CommitRows = 1000
			_, res := run(t, t.Context(), cfg)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			want := []string{"files", "file ledger"}
			if withTx {
				want = append(want, "db")
			}
			if strings.Join(order, ",") != strings.Join(want, ",") {
				t.Errorf("commit order %v, want %v", order, want)
			}
			if fileLedger.records != 1 || txLedger.records != 1 || fileLedger.txs[0] != nil {
				t.Errorf("ledgers recorded %d and %d times (file tx %v)", fileLedger.records, txLedger.records, fileLedger.txs)
			}
			if wantTx := any(nil); withTx && txLedger.txs[0] != "tx" || !withTx && txLedger.txs[0] != wantTx {
				t.Errorf("transactional ledger got tx %v", txLedger.txs[0])
			}
			if len(txLedger.confirms) != 1 || !txLedger.confirms[0] {
				t.Errorf("confirms %v, want one committed", txLedger.confirms)
			}
		})
	}
}

type noteLedger struct {
	*recordingLedger
	note func(string)
}

func (n noteLedger) Record(ctx context.Context, tx any, s []Settlement) error {
	n.note("file ledger")
	return n.recordingLedger.Record(ctx, tx, s)
}

// Issue 9, defect 6: after an interrupt a blocked commit held the run for
// the whole CommitTimeout. It gets Grace + CommitAllowance, then the rows
// are left for the next run.
func TestInterruptBoundsTheLastCommit(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	out := &memOutput{commit: func(ctx context.Context, _ []row, _ func(context.Context, any) error) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	cfg := config(&listSource{keys: keys(30)}, &okQuery{}, out)
	cfg.Grace, cfg.CommitAllowance = 100*time.Millisecond, 300*time.Millisecond
	ctx, interrupt := context.WithCancel(t.Context())
	go func() {
		<-started
		interrupt()
	}()
	start := time.Now()
	_, res := run(t, ctx, cfg)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the run took %s after a blocked commit; want about Grace + CommitAllowance", took)
	}
	if !res.Interrupted || !errors.Is(res.Err, errCommitCut) || !strings.Contains(res.Err.Error(), "rows left for the next run") {
		t.Errorf("result interrupted=%v err=%v; want an interrupted run whose commit was cut off", res.Interrupted, res.Err)
	}
	if res.Counts[outcome.Loaded] != 0 || res.Counts.Total() != res.Read {
		t.Errorf("counts %v, read %d: want nothing loaded and every row accounted for", res.Counts, res.Read)
	}
}

// Progress counts rows as settled when their outcome is known, before any
// commit, so a display is not frozen between commits; at the end Settled
// equals Read and the input is marked exhausted.
func TestProgressCountsSettledRowsBeforeTheirCommit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	out := &memOutput{}
	out.commit = func(ctx context.Context, rows []row, also func(context.Context, any) error) error {
		<-release
		return out.store(ctx, rows, also)
	}
	cfg := config(&listSource{keys: keys(40, 1)}, &okQuery{}, out)
	cfg.Dedup = true
	cfg.CommitRows = 1000 // one commit, at the end
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Result)
	go func() { done <- p.Run(t.Context()) }()

	deadline := time.Now().Add(10 * time.Second)
	var pr Progress
	for pr = p.Progress(); pr.Settled < 41 && time.Now().Before(deadline); pr = p.Progress() {
		time.Sleep(time.Millisecond)
	}
	if pr.Settled != 41 || pr.Done != 0 || !pr.InputDone || pr.Read != 41 {
		t.Errorf("before the commit: %+v; want 41 settled, 0 done, input done, 41 read", pr)
	}
	close(release)
	res := <-done
	end := p.Progress()
	if end.Settled != end.Read || end.Done != res.Counts.Total() || end.Counts[outcome.Loaded] != 40 || end.Counts[outcome.Duplicate] != 1 {
		t.Errorf("after the run: %+v, result %v; want settled = read = done", end, res.Counts)
	}
}
