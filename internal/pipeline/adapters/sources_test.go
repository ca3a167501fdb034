package adapters

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
)

type nopOut struct{}

func (nopOut) Name() string                                    { return "nop" }
func (nopOut) Commit(context.Context, []struct{}) (int, error) { return 0, nil }

// `etl run --input csv:-` fed by a producer that stalls, and one that
// trickles a few bytes: the run starts at once (opening does not wait for
// a full buffer), each row is handed over as it arrives, and an interrupt
// ends the run within --grace plus the commit allowance, though a read of
// stdin cannot be cancelled. Not parallel: it replaces os.Stdin.
func TestInterruptWithAStalledStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	if _, err := w.WriteString("ccId,vdn,callId\n1,1,1700000000-1\n"); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *csvsource.Reader, 1)
	go func() {
		src, err := csvsource.Open(csvsource.Config{Path: "-"})
		if err != nil {
			t.Error(err)
		}
		opened <- src
	}()
	var src *csvsource.Reader
	select {
	case src = <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("opening stdin waits for more input than the producer sent")
	}
	asked := make(chan struct{}, 10)
	q := func(ctx context.Context, it pipeline.Item) (pipeline.Answer[struct{}], pool.Verdict, error) {
		asked <- struct{}{}
		return pipeline.Answer[struct{}]{Outcome: outcome.NoData}, pool.Answered, nil
	}
	in := NewCSV(src)
	defer in.Close()
	p, err := pipeline.New(pipeline.Config[struct{}]{RunID: "t", Logger: zerolog.Nop(), Source: in, Query: q,
		Outputs: []pipeline.Output[struct{}]{nopOut{}}, Grace: 100 * time.Millisecond, CommitAllowance: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan pipeline.Result, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the row the producer sent was not handed over while the pipe stayed open")
	}
	cancel() // SIGTERM
	select {
	case res := <-done:
		if res.Read != 1 || res.Counts[outcome.NoData] != 1 {
			t.Errorf("read %d, counts %v; want the one row settled", res.Read, res.Counts)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("Run still running 3 s after the interrupt (grace 100ms + allowance 100ms): blocked reading stdin")
		w.Close()
		<-done
	}
}
