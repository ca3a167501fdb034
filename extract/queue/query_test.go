package queue_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/queue"
)

// liveKey is a call that started at start (its callId prefix, epoch ms).
func liveKey(start time.Time, seq int) extract.Key {
	return extract.Key{CCID: 1, VDN: 25, CallID: strconv.FormatInt(start.UnixMilli(), 10) + "-" + strconv.Itoa(seq)}
}

type tracked struct {
	Status        string
	Attempts      int
	NoDataAnswers int
	LiveSince     *time.Time
	LastAnswer    []byte
	AvailableAt   time.Time
}

func trackState(t *testing.T, pool *pgxpool.Pool, k extract.Key, query string) tracked {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT status, attempts, no_data_answers, live_since, last_answer, available_at
		FROM cms.call_queue WHERE (cc_id, vdn, call_id, query) = ($1, $2, $3, $4)`, k.CCID, k.VDN, k.CallID, query)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[tracked])
	if err != nil {
		t.Fatalf("row %v %s: %v", k, query, err)
	}
	return s
}

// claimOne claims and returns exactly the rows wanted.
func claim(t *testing.T, q *queue.Queue, n int) []queue.Claimed {
	t.Helper()
	got, _, err := q.Claim(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func settle(t *testing.T, q *queue.Queue, pool *pgxpool.Pool, outs ...queue.Outcome) {
	t.Helper()
	if _, err := q.Settle(t.Context(), pool, outs); err != nil {
		t.Fatal(err)
	}
}

// A call may be queued once per query; a worker claims and settles only its
// own query's rows, and the cdr rows carry their direction.
func TestQueriesAreSeparateQueues(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	k := liveKey(time.Now(), 1)
	in := true
	for _, q := range []string{queue.QueryBasic, queue.QueryCDR} {
		rep, err := queue.Enqueue(t.Context(), pool, q, func(yield func(queue.Entry, error) bool) {
			yield(queue.Entry{Key: k, Inbound: &in}, nil)
		})
		if err != nil || rep.Inserted != 1 {
			t.Fatalf("enqueue %s: %+v, %v", q, rep, err)
		}
	}
	// The producer contract still works and means basic: here a duplicate.
	if _, err := pool.Exec(t.Context(), `INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		k.CCID, k.VDN, k.CallID); err != nil {
		t.Fatal(err)
	}
	cdr := newQueue(t, pool, "cdr-worker", func(c *queue.Config) { c.Query = queue.QueryCDR })
	got := claim(t, cdr, 10)
	if len(got) != 1 || got[0].Key != k || got[0].Inbound == nil || !*got[0].Inbound {
		t.Fatalf("cdr claim = %+v, want the one cdr row, inbound", got)
	}
	settle(t, cdr, pool, queue.Outcome{Key: k, Status: queue.StatusDone})
	if s := trackState(t, pool, k, queue.QueryBasic); s.Status != "pending" || s.Attempts != 0 {
		t.Fatalf("the basic row changed with the cdr one: %+v", s)
	}
	if s := trackState(t, pool, k, queue.QueryCDR); s.Status != "done" {
		t.Fatalf("cdr row %+v, want done", s)
	}
	basic := newQueue(t, pool, "basic-worker", nil)
	if got := claim(t, basic, 10); len(got) != 1 || got[0].Inbound == nil {
		t.Fatalf("basic claim = %+v", got)
	}
}

// Tracking: a live answer keeps the row pending until its next poll, with
// its answer; new calls are claimed before tracked ones' polls; "no data"
// after live answers ends the tracking as done; TrackMax ends it too.
func TestTracking(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	now := time.Now()
	a, b, c := liveKey(now, 1), liveKey(now, 2), liveKey(now, 3)
	enqueue(t, pool, []extract.Key{a, b})
	q := newQueue(t, pool, "follower", func(c *queue.Config) { c.TrackEvery = 50 * time.Millisecond; c.TrackMax = time.Hour })
	claim(t, q, 10)
	answer := json.RawMessage(`{"deviceType":3}`)
	settle(t, q, pool,
		queue.Outcome{Key: a, Status: queue.StatusTrack, Answer: answer, AnswerAt: now},
		queue.Outcome{Key: b, Status: queue.StatusTrack, Answer: answer, AnswerAt: now})
	s := trackState(t, pool, a, queue.QueryBasic)
	if s.Status != "pending" || s.Attempts != 0 || s.LiveSince == nil || string(s.LastAnswer) != `{"deviceType": 3}` {
		t.Fatalf("tracked row %+v (answer %s)", s, s.LastAnswer)
	}
	// A new call, due now, goes before the polls that are due too.
	time.Sleep(60 * time.Millisecond)
	enqueue(t, pool, []extract.Key{c})
	got := claim(t, q, 1)
	if len(got) != 1 || got[0].Key != c || !got[0].LiveSince.IsZero() {
		t.Fatalf("first claim = %+v, want the new call %v", got, c)
	}
	got = claim(t, q, 10)
	if len(got) != 2 || got[0].LiveSince.IsZero() || string(got[0].LastAnswer) != `{"deviceType": 3}` {
		t.Fatalf("polls = %+v, want both tracked calls with their last answer", got)
	}
	settle(t, q, pool, queue.Outcome{Key: a, Status: queue.StatusNoData}, queue.Outcome{Key: c, Status: queue.StatusDone})
	if s := trackState(t, pool, a, queue.QueryBasic); s.Status != "done" {
		t.Fatalf("a tracked call answering no data: %+v, want done", s)
	}

	// TrackMax: a call live longer than it is done at its next live answer.
	short := newQueue(t, pool, "follower", func(c *queue.Config) { c.TrackEvery = time.Millisecond; c.TrackMax = time.Millisecond })
	settle(t, short, pool, queue.Outcome{Key: b, Status: queue.StatusTrack, Answer: answer, AnswerAt: time.Now()})
	if s := trackState(t, pool, b, queue.QueryBasic); s.Status != "done" {
		t.Fatalf("a call tracked past TrackMax: %+v, want done", s)
	}
}

// No data for a call that just started may mean "asked too early": it is
// asked again a few times while recent; an old call's no data is final; and
// requeue can select no_data rows.
func TestNoDataRetriesWhileRecent(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	recent, old := liveKey(time.Now(), 1), liveKey(time.Now().Add(-time.Hour), 2)
	enqueue(t, pool, []extract.Key{recent, old})
	q := newQueue(t, pool, "w", func(c *queue.Config) { c.NoDataRetries = 2; c.NoDataDelay = time.Millisecond })
	for round := 1; round <= 3; round++ {
		time.Sleep(5 * time.Millisecond)
		got := claim(t, q, 10)
		var outs []queue.Outcome
		for _, r := range got {
			outs = append(outs, queue.Outcome{Key: r.Key, Status: queue.StatusNoData})
		}
		settle(t, q, pool, outs...)
		s := trackState(t, pool, recent, queue.QueryBasic)
		want := "pending"
		if round == 3 {
			want = "no_data"
		}
		if s.Status != want || s.NoDataAnswers != min(round, 2) {
			t.Fatalf("round %d: recent call %+v, want %s", round, s, want)
		}
		if s := trackState(t, pool, old, queue.QueryBasic); s.Status != "no_data" {
			t.Fatalf("round %d: old call %+v, want no_data at once", round, s)
		}
	}
	n, err := q.Requeue(t.Context(), queue.RequeueFilter{Statuses: []string{queue.StatusNoData}})
	if err != nil || n != 2 {
		t.Fatalf("requeue no_data = %d, %v", n, err)
	}
	if s := trackState(t, pool, recent, queue.QueryBasic); s.Status != "pending" || s.NoDataAnswers != 0 {
		t.Fatalf("requeued %+v", s)
	}
}

// The trigger wakes listeners once per inserting statement.
func TestInsertNotifies(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), "LISTEN cms_call_queue"); err != nil {
		t.Fatal(err)
	}
	enqueue(t, pool, keys(0, 500))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(ctx)
	if err != nil || n.Channel != "cms_call_queue" {
		t.Fatalf("notification %+v, %v", n, err)
	}
	short, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	if n, err := conn.Conn().WaitForNotification(short); err == nil {
		t.Fatalf("a second notification %+v for one statement", n)
	}

}

// A call queued for both queries: the basic row claimed by one run, the cdr
// row done. The run's ReleaseOwned must hand back its basic row only.
func TestReleaseOwnedKeepsToItsQuery(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 1)
	enqueue(t, pool, ks)
	if _, err := queue.Enqueue(t.Context(), pool, queue.QueryCDR, source(ks)); err != nil {
		t.Fatal(err)
	}
	// The cdr row is done (another run fetched it).
	cdr := newQueue(t, pool, "cdr-run", func(c *queue.Config) { c.Query = queue.QueryCDR })
	if got, _, err := cdr.Claim(t.Context(), 1); err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	if _, err := cdr.Settle(t.Context(), pool, outcomes(ks, queue.StatusDone)); err != nil {
		t.Fatal(err)
	}
	basic := newQueue(t, pool, "basic-run", nil)
	if got, _, err := basic.Claim(t.Context(), 1); err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	n, err := basic.ReleaseOwned(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var status string
	if err := pool.QueryRow(t.Context(), `SELECT status FROM cms.call_queue WHERE query = 'cdr'`).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if n != 1 || status != "done" {
		t.Errorf("ReleaseOwned changed %d rows; the cdr row, done by another run, is now %q", n, status)
	}
}

// A call failed for both queries: requeue of the cdr rows alone leaves the
// basic row failed (re-asking an ended live call only costs budget).
func TestRequeueKeepsToItsQuery(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 1)
	enqueue(t, pool, ks)
	if _, err := queue.Enqueue(t.Context(), pool, queue.QueryCDR, source(ks)); err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{queue.QueryBasic, queue.QueryCDR} {
		q := newQueue(t, pool, query+"-run", func(c *queue.Config) { c.Query = query })
		if got := claim(t, q, 1); len(got) != 1 {
			t.Fatalf("%s claim = %+v", query, got)
		}
		settle(t, q, pool, queue.Outcome{Key: ks[0], Status: queue.StatusFailed, ResultCode: "0100001"})
	}
	q := newQueue(t, pool, "requeue", nil)
	if _, err := q.Requeue(t.Context(), queue.RequeueFilter{Statuses: []string{queue.StatusFailed}, Query: "nightly"}); err == nil {
		t.Fatal("Requeue accepted an unknown query")
	}
	n, err := q.Requeue(t.Context(), queue.RequeueFilter{Statuses: []string{queue.StatusFailed}, Query: queue.QueryCDR})
	if err != nil || n != 1 {
		t.Fatalf("Requeue(cdr) = %d, %v; want 1", n, err)
	}
	if s := trackState(t, pool, ks[0], queue.QueryCDR); s.Status != "pending" || s.Attempts != 0 {
		t.Errorf("cdr row %+v, want pending with no attempts", s)
	}
	if s := trackState(t, pool, ks[0], queue.QueryBasic); s.Status != "failed" {
		t.Errorf("basic row %+v, want still failed", s)
	}
}
