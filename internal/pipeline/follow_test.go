package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/outcome"
)

// chanSource is a follower's source: rows arrive on a channel, Next waits
// for them, Buffered says whether one is at hand; ctx ends it.
type chanSource struct{ in chan Item }

func (s chanSource) Next(ctx context.Context) (Item, error) {
	select {
	case it, ok := <-s.in:
		if !ok {
			return Item{}, io.EOF
		}
		return it, nil
	case <-ctx.Done():
		return Item{}, ctx.Err()
	}
}

func (s chanSource) Buffered() int { return len(s.in) }

// finalOutput takes one row per call.
type finalOutput struct{ fileOutput }

func (*finalOutput) FinalRowsOnly() {}

// A follower's rows reach the outputs as they come (the feed hands on
// what it read before waiting), its interrupt is its normal end, OnCommit
// fires per commit; a tracked call's interim rows go to the outputs that
// keep every state and its closing row only to those taking one row per
// call.
func TestFollowerRowsFlowAndTrackedRowsAreRouted(t *testing.T) {
	t.Parallel()
	live := json.RawMessage(`{"deviceType":2}`)
	q := func(ctx context.Context, it Item) (Answer[row], pool.Verdict, error) {
		switch it.Key.CallID {
		case "1-1": // live, tracked
			return Answer[row]{Outcome: outcome.Tracked, Row: row{it.Key}, Kept: &Live{Since: time.Now(), Last: live, LastAt: time.Now()}}, pool.Answered, nil
		case "1-2": // the tracked call ended: its row from the kept answer
			return Answer[row]{Outcome: outcome.Loaded, Closing: true, Row: row{it.Key}}, pool.Answered, nil
		case "1-3":
			return Answer[row]{Outcome: outcome.Failed, ResultCode: "0100002"}, pool.Answered, nil
		case "1-4":
			return Answer[row]{Outcome: outcome.Failed, Retry: true, HTTPStatus: 502}, pool.Answered, nil
		}
		return Answer[row]{Outcome: outcome.Loaded, Row: row{it.Key}}, pool.Answered, nil
	}
	warehouse, files := &memOutput{}, &finalOutput{}
	led := &recordingLedger{inTx: true}
	var commits atomic.Int64
	cfg := Config[row]{RunID: "f", Source: chanSource{make(chan Item, 10)}, Query: q, Outputs: []Output[row]{files, warehouse},
		Ledgers: []Ledger{led}, Pool: pool.Config{Concurrency: 2}, CommitRows: 1000, CommitInterval: 50 * time.Millisecond,
		Follow: true, OnCommit: func() { commits.Add(1) }}
	in := cfg.Source.(chanSource).in
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, interrupt := context.WithCancel(t.Context())
	done := make(chan Result, 1)
	go func() { done <- p.Run(ctx) }()

	for i, id := range []string{"1-1", "1-2", "1-3", "1-4", "1-5"} {
		in <- Item{Key: extract.Key{CCID: 1, VDN: 1, CallID: id}}
		// One row at a time, with nothing more at hand: it must get through.
		deadline := time.Now().Add(5 * time.Second)
		for p.Progress().Done < int64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("row %s not committed while the source waits: %+v", id, p.Progress())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	interrupt()
	res := <-done
	if res.Err != nil || !res.Interrupted {
		t.Fatalf("a follower's interrupt: err %v, interrupted %v; want its normal end", res.Err, res.Interrupted)
	}
	if commits.Load() < 5 {
		t.Errorf("OnCommit heard %d commits, want one per row", commits.Load())
	}
	want := outcome.Counts{outcome.Tracked: 1, outcome.Loaded: 2, outcome.Failed: 2}
	for o, n := range want {
		if res.Counts[o] != n {
			t.Errorf("%s = %d, want %d (%v)", o, res.Counts[o], n, res.Counts)
		}
	}
	keysOf := func(rs []row) map[string]bool {
		m := map[string]bool{}
		for _, r := range rs {
			m[r.key.CallID] = true
		}
		return m
	}
	if got := keysOf(warehouse.rows); !got["1-1"] || got["1-2"] || !got["1-5"] || len(got) != 2 {
		t.Errorf("the warehouse got %v; want the interim 1-1 and 1-5, not the closing row", got)
	}
	if got := keysOf(files.rows); got["1-1"] || !got["1-2"] || !got["1-5"] || len(got) != 2 {
		t.Errorf("the files got %v; want the closing 1-2 and 1-5, not the interim row", got)
	}
	var kept *Live
	for _, s := range led.all() {
		if s.Item.Key.CallID == "1-1" {
			kept = s.Kept
		}
	}
	if kept == nil || string(kept.Last) != string(live) {
		t.Errorf("the tracked call's settlement keeps %+v, want its answer", kept)
	}
	wantCodes := []FailureCode{{outcome.Failed, "0100002", 1}, {outcome.Failed, "HTTP 502", 1}}
	if len(res.Failures) != 2 || res.Failures[0] != wantCodes[0] || res.Failures[1] != wantCodes[1] {
		t.Errorf("failures %+v, want %+v", res.Failures, wantCodes)
	}
}

// all returns every settlement the ledger recorded.
func (l *recordingLedger) all() []Settlement {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Settlement(nil), l.settled...)
}
