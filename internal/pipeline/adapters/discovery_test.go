package adapters

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
)

// pagesOf is a Lister answering every window with the calls started in it
// at one a minute; inbound IDs are even, outbound odd. It stops the
// discovery (401) for a window beginning at fatalAt.
type pagesOf struct {
	fatalAt time.Time
	asked   atomic.Int64
}

func (p *pagesOf) List(_ context.Context, q cms.ListRequest) cms.ListResult {
	p.asked.Add(1)
	if q.Begin.Equal(p.fatalAt) {
		return cms.ListResult{Class: cms.ClassFatal, HTTPStatus: 401, Message: "HTTP 401: signature rejected"}
	}
	var ids []string
	for at := q.Begin.Truncate(time.Minute); !at.After(q.End); at = at.Add(time.Minute) {
		if at.Before(q.Begin) {
			continue
		}
		dir := 1
		if q.Inbound {
			dir = 0
		}
		ids = append(ids, strconv.FormatInt(at.Unix(), 10)+"-"+strconv.Itoa(2*q.VDN+dir))
	}
	page := ids[min(q.Offset, len(ids)):min(q.Offset+q.Limit, len(ids))]
	l := cms.Listing{Code: cms.CodeSuccess, Count: int64(len(ids)), HasCount: true}
	for _, id := range page {
		l.Items = append(l.Items, []byte(`{"callId":"`+id+`","callType":"0","mediaType":5}`))
	}
	return cms.ListResult{Class: cms.ClassOK, Listing: l, FetchedAt: q.End}
}

var (
	discoveryDay = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	discoveryCfg = discover.Config{CCID: 1, VDNs: []int{25, 26}, From: discoveryDay, To: discoveryDay.Add(3 * time.Hour),
		Inbound: true, Outbound: true, Now: func() time.Time { return discoveryDay.Add(25 * time.Hour) }}
)

// The discovery is a source: every call of every accepted slice comes out
// once, in its pass's direction, carrying its listing, and ListedQuery makes
// its call_record row without a request; then io.EOF, with the
// reconciliation in Result.
func TestDiscoverySource(t *testing.T) {
	t.Parallel()
	src := NewDiscovery(discoveryCfg, &pagesOf{})
	src.Start(t.Context())
	defer src.Stop()
	query := ListedQuery("run-1")
	seen := map[extract.Key]bool{}
	for {
		it, err := src.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[it.Key] {
			t.Fatalf("%v twice", it.Key)
		}
		seen[it.Key] = true
		suffix, _ := strconv.Atoi(it.Key.CallID[len(it.Key.CallID)-2:])
		if wantIn := suffix%2 == 0; it.Inbound != wantIn {
			t.Errorf("%v: inbound %v", it.Key, it.Inbound)
		}
		a, v, err := query(t.Context(), it)
		if err != nil || v != pool.Answered || a.Outcome != outcome.Loaded {
			t.Fatalf("%v: %v %v %v", it.Key, a.Outcome, v, err)
		}
		if a.Row.CallID != it.Key.CallID || a.Row.IsCallIn != it.Inbound || a.Row.RunID != "run-1" ||
			a.Row.MediaTypeLabel == nil || *a.Row.MediaTypeLabel != "voice" || len(a.Row.Raw) == 0 {
			t.Errorf("%v: row %+v", it.Key, a.Row)
		}
	}
	src.Stop()
	res, err := src.Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * 2 * 180; len(seen) != want {
		t.Errorf("%d calls, want %d", len(seen), want)
	}
	covered, calls := src.Covered()
	if covered != 4*3*time.Hour || calls != int64(len(seen)) {
		t.Errorf("covered %v, %d calls", covered, calls)
	}
	for _, ta := range res.Tallies {
		if ta.Kept != 180 || ta.Reported != 180 {
			t.Errorf("tally %+v", ta)
		}
	}
}

// A fatal answer stops the discovery, and the source reports it; a source
// stopped while the pipeline no longer reads, or never started, does not
// hang.
func TestDiscoverySourceStops(t *testing.T) {
	t.Parallel()
	src := NewDiscovery(discoveryCfg, &pagesOf{fatalAt: discoveryDay.Add(time.Hour)})
	src.Start(t.Context())
	var err error
	for err == nil {
		_, err = src.Next(t.Context())
	}
	if !errors.Is(err, discover.ErrStop) {
		t.Errorf("Next: %v, want discover.ErrStop", err)
	}
	src.Stop()

	lister := &pagesOf{}
	blocked := NewDiscovery(discoveryCfg, lister)
	blocked.Start(t.Context())
	deadline := time.Now().Add(10 * time.Second)
	for lister.asked.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { blocked.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hung while the discovery waited for the pipeline")
	}
	if _, err := blocked.Result(); !errors.Is(err, context.Canceled) {
		t.Errorf("stopped discovery: %v, want context.Canceled", err)
	}
	NewDiscovery(discoveryCfg, lister).Stop()
}

func TestDirection(t *testing.T) {
	t.Parallel()
	in, out := true, false
	for _, tc := range []struct {
		name   string
		rule   Direction
		own    *bool
		want   *bool
		reject bool
	}{
		{"not asked", Direction{}, nil, nil, false},
		{"own", Direction{Required: true}, &out, &out, false},
		{"own wins over the default", Direction{Required: true, Default: &in}, &out, &out, false},
		{"default", Direction{Required: true, Default: &in}, nil, &in, false},
		{"none", Direction{Required: true, Missing: "no direction"}, nil, nil, true},
	} {
		got, err := tc.rule.Of(tc.own)
		if (err != nil) != tc.reject || (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: %v %v", tc.name, got, err)
		}
		it := pipeline.Item{Inbound: !in}
		tc.rule.resolve(&it, tc.own)
		if (it.Err != nil) != tc.reject || (tc.want != nil && it.Inbound != *tc.want) {
			t.Errorf("%s: item %+v", tc.name, it)
		}
		var fe *extract.FieldError
		if tc.reject && (!errors.As(it.Err, &fe) || fe.Field != "isCallIn" || fe.Reason != "no direction") {
			t.Errorf("%s: rejection %v", tc.name, it.Err)
		}
	}
}

// The queue ledger counts a batch once its transaction committed, and the
// last Record of a batch (a transaction run again after a conflict)
// stands.
func TestEnqueueCountsCommittedBatches(t *testing.T) {
	t.Parallel()
	e := &Enqueue{Queries: []string{queue.QueryCDR}}
	e.pending = map[string]queue.Added{queue.QueryCDR: {Inserted: 5, Queued: 1}}
	e.Confirm(nil, false)
	e.pending = map[string]queue.Added{queue.QueryCDR: {Inserted: 7, Queued: 2}}
	e.Confirm(nil, true)
	if got := e.Added()[queue.QueryCDR]; got != (queue.Added{Inserted: 7, Queued: 2}) {
		t.Errorf("added %+v, want only the committed batch", got)
	}
}
