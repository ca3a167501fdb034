package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/load/parquet"
)

// sortedCalls are calls in the simulator's listing order.
func sortedCalls(m map[string]cmssim.Call) []cmssim.Call {
	out := make([]cmssim.Call, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].WaitBegin.Equal(out[j].WaitBegin) {
			return out[i].WaitBegin.Before(out[j].WaitBegin)
		}
		return out[i].CallID < out[j].CallID
	})
	return out
}

// etl run --query cdr from a CSV: a row's direction is its isCallIn cell,
// else --direction; a bad cell rejects the row naming the field; without
// --direction a row with no direction is rejected, saying so. The CDR's
// local begin/end times are read in --tz.
func TestRunCDRFromCSV(t *testing.T) {
	t.Parallel()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	h := scheduleHarness(t, 5, func(_ *cmssim.Config, c *cmssim.CallsConfig) { c.TenantZone = shanghai })
	day := yesterday()
	calls := sortedCalls(listed(h, day, day.Add(2*time.Hour)))
	var b strings.Builder
	b.WriteString("ccId,vdn,callId,isCallIn\n")
	var withOwn, inbound, outbound, timed []cmssim.Call
	for _, c := range calls {
		switch {
		case c.HasOutboundTimes() && len(timed) < 5:
			timed = append(timed, c)
			fmt.Fprintf(&b, "%d,%d,%s,false\n", c.CCID, c.VDN, c.CallID)
		case len(withOwn) < 10:
			withOwn = append(withOwn, c)
			fmt.Fprintf(&b, "%d,%d,%s,%s\n", c.CCID, c.VDN, c.CallID, map[bool]string{true: "1", false: "FALSE"}[c.Inbound])
		case c.Inbound && len(inbound) < 5:
			inbound = append(inbound, c)
			fmt.Fprintf(&b, "%d,%d,%s,\n", c.CCID, c.VDN, c.CallID)
		case !c.Inbound && len(outbound) < 5:
			outbound = append(outbound, c)
			fmt.Fprintf(&b, "%d,%d,%s,\n", c.CCID, c.VDN, c.CallID)
		}
	}
	if len(timed) < 5 || len(outbound) < 5 || len(inbound) < 5 {
		t.Fatalf("the schedule holds too few calls: %d timed, %d in, %d out", len(timed), len(inbound), len(outbound))
	}
	b.WriteString("1,25," + calls[0].CallID + ",maybe\n")
	in := filepath.Join(h.dir, "calls.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(h.dir, "details")
	args := h.args(in, out, "--query", "cdr", "--tz", "Asia/Shanghai", "--rate", "0")

	// --direction in: rows without a direction are asked as inbound; the
	// outbound ones among them get "no data" (the wrong pass).
	o := h.run(append(args, "--direction", "in")...)
	checkAccounting(t, o)
	loaded := int64(len(withOwn) + len(timed) + len(inbound))
	if o.code != ExitPartial || o.outcome("loaded") != loaded || o.outcome("no_data") != int64(len(outbound)) || o.outcome("rejected") != 1 {
		t.Fatalf("exit %d, outcomes %v; want 3 with %d loaded, %d no_data, 1 rejected:\n%s", o.code, o.summary["outcomes"], loaded, len(outbound), tail(o.stderr, 3000))
	}
	rejects := readRejects(t, filepath.Join(out, "_rejects"))
	if len(rejects) != 1 || !strings.Contains(rejects[0]["reason"], `isCallIn "maybe"`) {
		t.Errorf("rejects %v, want the bad isCallIn cell named", rejects)
	}
	rows := map[string]map[string]any{}
	for _, r := range readDataset(t, out) {
		rows[datasetKey(r)] = r
	}
	for _, c := range timed {
		r := rows[c.Key().String()]
		if r == nil || r["begin_time"] != c.WaitBegin.Truncate(time.Second).UnixMicro() || r["end_time"] != c.CallEnd.Truncate(time.Second).UnixMicro() {
			t.Errorf("%v: begin/end %v %v, want %v %v (the CDR's Asia/Shanghai times read in --tz)", c.Key(), r["begin_time"], r["end_time"], c.WaitBegin, c.CallEnd)
		}
	}
	for _, c := range append(withOwn, inbound...) {
		if r := rows[c.Key().String()]; r == nil || r["is_call_in"] != c.Inbound {
			t.Errorf("%v: row %v, want is_call_in %v", c.Key(), r, c.Inbound)
		}
	}

	// Without --direction the rows without one are rejected: a guess would
	// ask the wrong pass.
	out2 := filepath.Join(h.dir, "details2")
	o = h.run(h.args(in, out2, "--query", "cdr", "--tz", "Asia/Shanghai", "--rate", "0")...)
	checkAccounting(t, o)
	if o.code != ExitPartial || o.outcome("rejected") != int64(1+len(inbound)+len(outbound)) {
		t.Fatalf("exit %d, outcomes %v", o.code, o.summary["outcomes"])
	}
	n := 0
	for _, r := range readRejects(t, filepath.Join(out2, "_rejects")) {
		if strings.Contains(r["reason"], "no direction") && strings.Contains(r["reason"], "--direction is not set") {
			n++
		}
	}
	if n != len(inbound)+len(outbound) {
		t.Errorf("%d rows rejected for want of a direction, want %d", n, len(inbound)+len(outbound))
	}
}

// etl enqueue --query cdr queues each CSV row with its direction (its own,
// else --direction); without --direction a row with none is rejected
// (exit 3) and the others are queued. The basic queue is untouched.
func TestEnqueueCDR(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	in := filepath.Join(t.TempDir(), "calls.csv")
	csv := "ccId,vdn,callId,isCallIn\n1,25,1764547200-25001,true\n1,25,1764547201-25002,0\n1,25,1764547202-25003,\n1,25,1764547203-25004,x\n"
	if err := os.WriteFile(in, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	enqueue := func(more ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := Main(t.Context(), append([]string{"enqueue", "--input", "csv:" + in, "--database-url", url, "--log-format", "json"}, more...),
			Env{Stdout: &stdout, Stderr: &stderr})
		return code, stdout.String() + stderr.String()
	}
	if code, out := enqueue("--query", "cdr"); code != ExitPartial || !strings.Contains(out, "2 inserted") || !strings.Contains(out, "2 rejected") ||
		!strings.Contains(out, "no direction") {
		t.Fatalf("enqueue without --direction: exit %d\n%s", code, out)
	}
	if code, out := enqueue("--query", "cdr", "--direction", "out"); code != ExitPartial || !strings.Contains(out, "1 inserted, 2 already queued, 1 rejected") {
		t.Fatalf("enqueue with --direction out: exit %d\n%s", code, out)
	}
	got := map[string]string{}
	rows, err := db.Query(t.Context(), "SELECT call_id, query || ' ' || coalesce(is_call_in::text, 'null') FROM cms.call_queue")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got[id] = v
	}
	want := map[string]string{"1764547200-25001": "cdr true", "1764547201-25002": "cdr false", "1764547202-25003": "cdr false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queue %v, want %v", got, want)
	}
}

// A CSV made for the basic query (etl run's and etl enqueue's default) may
// carry an is_call_in column in its producer's own spelling (Y/N), or two
// of them: the basic query never reads a direction, so every row runs and
// is queued as before. Only --query cdr reads the column, rejecting a cell
// it cannot read by the column's name as the header spells it.
func TestBasicQueryIgnoresTheDirectionColumn(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{})
	keys := make([]extract.Key, 20)
	for i := range keys {
		keys[i] = extract.Key{CCID: 1, VDN: 1 + i%3, CallID: fmt.Sprintf("%d-%d", 1763856000000+int64(i)*61000, 1000+i)}
	}
	want := h.expected(keys)
	tests := []struct {
		name, header, cells string
		cdrRefusal          string // etl enqueue --query cdr --direction in, on this file
	}{
		{"producer's Y/N", "is_call_in", "%s", `is_call_in \"Y\": want true, false, 1 or 0`},
		{"two direction columns", "is_call_in,isCallIn", "%s,", `two direction columns, \"is_call_in\" (column 4) and \"isCallIn\" (column 5)`},
	}
	for i, tc := range tests {
		var b strings.Builder
		b.WriteString("ccId,vdn,callId," + tc.header + "\n")
		for j, k := range keys {
			fmt.Fprintf(&b, "%d,%d,%s,"+tc.cells+"\n", k.CCID, k.VDN, k.CallID, map[bool]string{true: "Y", false: "N"}[j%2 == 0])
		}
		in := filepath.Join(h.dir, fmt.Sprintf("calls%d.csv", i))
		if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		o := h.run(h.args(in, filepath.Join(h.dir, fmt.Sprintf("lake%d", i)), "--rate", "0")...)
		checkAccounting(t, o)
		if o.code != ExitOK || o.outcome("rejected") != 0 || o.outcome("loaded") != want["ok"] {
			t.Fatalf("%s: etl run (basic): exit %d, outcomes %v, want 0 and %d loaded:\n%s", tc.name, o.code, o.summary["outcomes"], want["ok"], tail(o.stderr, 3000))
		}
		enqueue := func(more ...string) (int, string) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append([]string{"enqueue", "--input", "csv:" + in, "--database-url", url, "--log-format", "json"}, more...),
				Env{Stdout: &stdout, Stderr: &stderr})
			return code, stdout.String() + stderr.String()
		}
		if code, out := enqueue(); code != ExitOK || !strings.Contains(out, "20 rows read") || !strings.Contains(out, "0 rejected") {
			t.Fatalf("%s: etl enqueue (basic): exit %d\n%s", tc.name, code, out)
		}
		if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'basic' AND is_call_in IS NULL"); n != 20 {
			t.Errorf("%s: %d basic queue rows, want 20", tc.name, n)
		}
		// The CDR reads the direction, and names its column as spelled.
		if code, out := enqueue("--query", "cdr", "--direction", "in"); code == ExitOK || !strings.Contains(out, tc.cdrRefusal) {
			t.Errorf("%s: etl enqueue --query cdr: exit %d, want %q:\n%s", tc.name, code, tc.cdrRefusal, out)
		}
	}
}

// A discovery whose window reaches past what has closed lists the closed
// slices and exits 3, counting the slices still open; a rejected signature
// stops it at once with exit 1.
func TestDiscoverExitCodes(t *testing.T) {
	t.Parallel()
	h := scheduleHarness(t, 2, nil)
	today := testNow().UTC().Truncate(24 * time.Hour)
	out := filepath.Join(h.dir, "records")
	// The slices closed are those that ended --settle-lag before etl read
	// its clock, some instant between these two.
	closedFirst := testNow().UTC().Add(-15 * time.Minute).Truncate(time.Hour)
	o := h.run(discoverArgs(h, "--output", "parquet:"+out, "--rate", "0",
		"--from", today.Format(time.RFC3339), "--to", today.Add(24*time.Hour).Format(time.RFC3339))...)
	closedLast := testNow().UTC().Add(-15 * time.Minute).Truncate(time.Hour)
	checkAccounting(t, o)
	total := discoveryOf(t, o)["total"].(map[string]any)
	if o.code != ExitPartial || o.summary["status"] != "partial" || total["slices_open"].(float64) < 4 || total["slices_failed"] != 0.0 {
		t.Fatalf("exit %d, discovery %v: want 3 with open slices", o.code, total)
	}
	if !strings.Contains(o.stderr, "listable_after") {
		t.Errorf("no warning says when the open slices can be listed:\n%s", tail(o.stderr, 2000))
	}
	if first, last := listed(h, today, closedFirst), listed(h, today, closedLast); o.outcome("loaded") != int64(len(first)) &&
		o.outcome("loaded") != int64(len(last)) {
		t.Errorf("loaded %d, want the %d calls of the slices closed by %v (or %d by %v)", o.outcome("loaded"), len(first), closedFirst, len(last), closedLast)
	}

	wrong := discoverArgs(h, "--output", "parquet:"+filepath.Join(h.dir, "wrong"), "--rate", "0")
	for i, a := range wrong {
		if a == "--ak" {
			wrong[i+1] = "wrongAK"
		}
	}
	o = h.run(wrong...)
	if o.code != ExitAborted || o.summary["status"] != "aborted" || !strings.Contains(o.summary["error"].(string), "401") ||
		!strings.Contains(o.summary["error"].(string), "stopped at once") {
		t.Errorf("wrong AK: exit %d, summary %v", o.code, o.summary)
	}
	if n := h.sim.Stats().ByOutcome[cmssim.OutcomeUnauthorized]; n > int64(maxDiscoverConcurrency) {
		t.Errorf("%d requests after the first 401", n)
	}
}

// Only a stop by the API's refusal (401, 403, TLS) is explained by the IP
// lockout; a streak of failed pages or a lost rate group stop for reasons
// their own messages give.
func TestStopHint(t *testing.T) {
	t.Parallel()
	lockout := "(stopped at once: repeated bad signatures can get the caller's IP locked)"
	tests := []struct {
		name string
		err  error
		hint bool
	}{
		{"401", &discover.StopError{Message: "HTTP 401", HTTPStatus: 401}, true},
		{"403", &discover.StopError{Message: "HTTP 403", HTTPStatus: 403}, true},
		{"TLS", &discover.StopError{Message: "tls", Err: fmt.Errorf("dial: %w", x509.UnknownAuthorityError{})}, true},
		{"wrapped 401", fmt.Errorf("discover calls: %w", &discover.StopError{HTTPStatus: 401}), true},
		{"transient streak", &discover.StopError{Message: "50 querycalls requests in a row failed", HTTPStatus: 503, Err: errors.New("HTTP 503")}, false},
		{"HTTP error streak", &discover.StopError{Message: "50 querycalls requests in a row failed", HTTPStatus: 404, Err: &cms.StatusError{Status: 404}}, false},
		{"rate group lost", &discover.StopError{Message: "rate group", Err: ratecontrol.ErrStopped}, false},
		{"interrupted", context.Canceled, false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		if got := stopHint(tt.err); (got != "") != tt.hint || tt.hint && !strings.Contains(got, lockout) {
			t.Errorf("%s: stopHint = %q, want the lockout hint: %v", tt.name, got, tt.hint)
		}
	}
}

// --settle-lag 0 asks every slice that has ended (not the default 15
// minutes): a window ending now is listed whole, exit 0. A discovery the
// API's outage stops after --max-transient-streak pages says so, and does
// not blame the signature.
func TestDiscoverSettleLagZeroAndAStreakStop(t *testing.T) {
	t.Parallel()
	h := scheduleHarness(t, 2, nil)
	now := testNow().UTC()
	from, to := now.Truncate(time.Hour).Add(-2*time.Hour), now.Truncate(time.Second)
	if from.Before(yesterday()) {
		from = yesterday()
	}
	window := []string{"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}
	for _, tc := range []struct {
		lag  string
		code int
		open bool
	}{{"0", ExitOK, false}, {"15m", ExitPartial, true}} {
		o := h.run(discoverArgs(h, append(window, "--output", "parquet:"+filepath.Join(h.dir, "lag"+tc.lag), "--rate", "0", "--settle-lag", tc.lag)...)...)
		checkAccounting(t, o)
		total := discoveryOf(t, o)["total"].(map[string]any)
		if o.code != tc.code || (total["slices_open"].(float64) > 0) != tc.open || total["slices_failed"] != 0.0 {
			t.Errorf("--settle-lag %s: exit %d, discovery %v; want %d, slices open: %v", tc.lag, o.code, total, tc.code, tc.open)
		}
	}

	down := scheduleHarness(t, 2, func(cfg *cmssim.Config, _ *cmssim.CallsConfig) {
		cfg.TransientShare, cfg.TransientAttempts, cfg.TransientKinds = 1, 1000, []string{"5xx"}
	})
	o := down.run(discoverArgs(down, "--output", "parquet:"+filepath.Join(down.dir, "down"), "--rate", "0",
		"--max-attempts", "1", "--max-transient-streak", "5")...)
	msg, _ := o.summary["error"].(string)
	if o.code != ExitAborted || !strings.Contains(msg, "querycalls requests in a row failed") || strings.Contains(msg, "IP locked") {
		t.Errorf("API down: exit %d, error %q; want 1, the streak named, no word of the signature", o.code, msg)
	}
}

// etl discover reads its clock from Env.Now (the tests pin it with the
// simulator's): "yesterday", the window rule and the closed slices follow
// that clock, not the machine's, so a test that runs long never meets
// midnight between etl and the simulator.
func TestDiscoverReadsEnvClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 11, 15, 23, 59, 0, 0, time.UTC) // a minute before midnight, a year ago
	clock := func() time.Time { return at }
	h := scheduleHarness(t, 1, func(_ *cmssim.Config, c *cmssim.CallsConfig) { c.Now = clock })
	day := time.Date(2025, 11, 14, 0, 0, 0, 0, time.UTC)
	want := listed(h, day, day.Add(24*time.Hour))
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), discoverArgs(h, "--output", "parquet:"+filepath.Join(h.dir, "records"), "--rate", "0"),
		Env{Stdout: &stdout, Stderr: &stderr, Now: clock})
	o := parseRun(t, code, stderr.String())
	checkAccounting(t, o)
	if d := discoveryOf(t, o); o.code != ExitOK || d["from"] != "2025-11-14T00:00:00Z" || o.outcome("loaded") != int64(len(want)) {
		t.Fatalf("exit %d, window from %v, loaded %d; want 0, yesterday of Env.Now (2025-11-14), %d calls:\n%s",
			o.code, d["from"], o.outcome("loaded"), len(want), tail(o.stderr, 3000))
	}
}

// Pages that fail after their retries fail their slices: the discovery
// lists the rest, names the failed slices and exits 3; the same command
// again lists what was missing.
func TestDiscoverFailedSlicesThenRerun(t *testing.T) {
	t.Parallel()
	h := scheduleHarness(t, 2, func(cfg *cmssim.Config, _ *cmssim.CallsConfig) {
		cfg.TransientShare, cfg.TransientAttempts, cfg.TransientKinds = 0.2, 1, []string{cmssim.FaultGenericFailure}
	})
	day := yesterday()
	want := listed(h, day, day.Add(24*time.Hour))
	out := filepath.Join(h.dir, "records")
	args := discoverArgs(h, "--output", "parquet:"+out, "--rate", "0", "--max-attempts", "1")
	o := h.run(args...)
	checkAccounting(t, o)
	d := discoveryOf(t, o)
	total := d["total"].(map[string]any)
	failures := d["failures"].([]any)
	if o.code != ExitPartial || total["slices_failed"].(float64) == 0 || len(failures) != int(total["slices_failed"].(float64)) ||
		o.outcome("loaded") >= int64(len(want)) {
		t.Fatalf("exit %d, loaded %d of %d, discovery %v", o.code, o.outcome("loaded"), len(want), total)
	}
	if f := failures[0].(string); !strings.Contains(f, "vdn 2") || !strings.Contains(f, "0100001") {
		t.Errorf("a failure does not name its slice and cause: %q", f)
	}
	o = h.run(args...)
	if o.code != ExitOK || o.outcome("loaded")+o.outcome("already_loaded") != int64(len(want)) {
		t.Fatalf("rerun: exit %d, outcomes %v, want all %d calls", o.code, o.summary["outcomes"], len(want))
	}
	if keys, rows := committed(t, out); rows != len(want) || len(keys) != rows {
		t.Errorf("the dataset holds %d rows (%d distinct), want %d", rows, len(keys), len(want))
	}
}

// Listed rows without a callId are rejected one by one, naming the slice,
// the offset and the row: every other call of their slices is written, no
// slice fails, and the discovery exits 3 (rejected rows). A rerun writes
// nothing twice and says the same.
func TestDiscoverRejectsRowsWithoutACallID(t *testing.T) {
	t.Parallel()
	h := scheduleHarness(t, 3, func(_ *cmssim.Config, c *cmssim.CallsConfig) { c.UnkeyedRowShare = 0.02 })
	day := yesterday()
	from, to := day, day.Add(6*time.Hour)
	want, unkeyed := map[string]cmssim.Call{}, 0
	for k, c := range listed(h, from, to) {
		if c.Unkeyed {
			unkeyed++
			continue
		}
		want[k] = c
	}
	if unkeyed == 0 {
		t.Fatal("the schedule lists no call without its callId")
	}
	out := filepath.Join(h.dir, "records")
	args := discoverArgs(h, "--output", "parquet:"+out, "--rate", "0", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	for run := range 2 {
		o := h.run(args...)
		checkAccounting(t, o)
		d := discoveryOf(t, o)
		total := d["total"].(map[string]any)
		failures := d["failures"].([]any)
		if o.code != ExitPartial || total["rows_rejected"] != float64(unkeyed) || total["slices_failed"] != 0.0 ||
			total["count_reported"] != float64(len(want)+unkeyed) || total["rows_kept"] != float64(len(want)) || len(failures) != unkeyed {
			t.Fatalf("run %d: exit %d, discovery %v, %d failures; want 3, %d rows rejected of %d", run, o.code, total, len(failures), unkeyed, len(want)+unkeyed)
		}
		if f := failures[0].(string); !strings.Contains(f, "vdn 2") || !strings.Contains(f, "row at offset ") ||
			!strings.Contains(f, "rejected: no callId; listed as {") || !strings.Contains(f, `"logDate":"`) {
			t.Errorf("a rejection does not name its slice, offset, reason and row: %q", f)
		}
		if got := o.outcome("loaded") + o.outcome("already_loaded"); got != int64(len(want)) || run == 1 && o.outcome("loaded") != 0 {
			t.Errorf("run %d: outcomes %v, want the %d keyed calls", run, o.summary["outcomes"], len(want))
		}
	}
	seen := map[string]bool{}
	for _, r := range readDataset(t, out) {
		k := datasetKey(r)
		if _, ok := want[k]; !ok || seen[k] {
			t.Errorf("the dataset holds %s (listed: %v, twice: %v)", k, ok, seen[k])
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		t.Errorf("the dataset holds %d calls, want %d", len(seen), len(want))
	}
}

// A listed call is filed under the UTC date of its waitBegin, which for a
// chat that waited in a queue lies days before the window listed: a rerun
// finds it there and writes nothing twice, however far back its partition
// is (the committed keys are read per partition the listed rows name).
func TestDiscoverRerunFindsRowsFiledBeforeTheWindow(t *testing.T) {
	t.Parallel()
	h := scheduleHarness(t, 3, func(_ *cmssim.Config, c *cmssim.CallsConfig) { c.QueuedChatShare = 1 })
	day := yesterday()
	from, to := day, day.Add(6*time.Hour)
	want := listed(h, from, to)
	out := filepath.Join(h.dir, "records")
	args := discoverArgs(h, "--output", "parquet:"+out, "--rate", "0", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK || o.outcome("loaded") != int64(len(want)) {
		t.Fatalf("discover: exit %d, outcomes %v, want all %d calls loaded:\n%s", o.code, o.summary["outcomes"], len(want), tail(o.stderr, 3000))
	}
	early := day.AddDate(0, 0, -3).Format(time.DateOnly)
	old, _ := filepath.Glob(filepath.Join(out, "call_date=*", "part-*.parquet"))
	n := 0
	for _, f := range old {
		if d := strings.TrimPrefix(filepath.Base(filepath.Dir(f)), "call_date="); d <= early {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no part file dated %s or earlier: the test needs rows filed before the window (%v)", early, old)
	}

	o = h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK || o.outcome("loaded") != 0 || o.outcome("already_loaded") != int64(len(want)) {
		t.Errorf("rerun: exit %d, outcomes %v, want all %d calls already loaded", o.code, o.summary["outcomes"], len(want))
	}
	seen := map[string]int{}
	for _, r := range readDataset(t, out) {
		seen[datasetKey(r)]++
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("the dataset holds %s %d times", k, c)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("the dataset holds %d calls, want %d", len(seen), len(want))
	}
}

// SIGINT stops a discovery: what is listed and collected commits, the
// summary says interrupted (exit 1) and counts what committed; the same
// command again lists the rest. With Parquet alone, --enqueue queues the
// calls right after their files commit.
func TestDiscoverInterruptedThenRerun(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := scheduleHarness(t, 5, nil)
	day := yesterday()
	from, to := day, day.Add(6*time.Hour)
	want := listed(h, from, to)
	out := filepath.Join(h.dir, "records")
	args := discoverArgs(h, "--output", "parquet:"+out, "--enqueue", "cdr", "--database-url", url,
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--rate", "4", "--concurrency", "1", "--commit-interval", "200ms", "--grace", "5s")
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool { return h.sim.Stats().ByEndpoint[cmssim.EndpointQueryCalls] >= 8 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	o := parseRun(t, cmd.ProcessState.ExitCode(), stderr.String())
	checkAccounting(t, o)
	if o.code != ExitAborted || !strings.Contains(fmt.Sprint(o.summary["error"]), "interrupted") {
		t.Fatalf("interrupted discovery: exit %d, error %v", o.code, o.summary["error"])
	}
	if _, rows := committed(t, out); int64(rows) != o.outcome("loaded") || rows == 0 || rows >= len(want) ||
		count(t, db, "SELECT count(*) FROM cms.call_queue") != int64(rows) {
		t.Fatalf("interrupted discovery reported %d loaded, committed %d of %d, queued %d", o.outcome("loaded"), rows, len(want),
			count(t, db, "SELECT count(*) FROM cms.call_queue"))
	}
	o = h.run(args...)
	if o.code != ExitOK {
		t.Fatalf("rerun exit %d:\n%s", o.code, tail(o.stderr, 3000))
	}
	if keys, rows := committed(t, out); rows != len(want) || len(keys) != rows {
		t.Errorf("the dataset holds %d rows (%d distinct), want %d", rows, len(keys), len(want))
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'cdr' AND is_call_in IS NOT NULL"); n != int64(len(want)) {
		t.Errorf("%d calls queued, want %d", n, len(want))
	}
}

// streakLister stops a discovery after --max-transient-streak failed pages
// in a row; a page that answers resets the streak.
func TestStreakListerStopsWhenTheAPIIsDown(t *testing.T) {
	t.Parallel()
	answers := []cms.Class{cms.ClassTransient, cms.ClassTransient, cms.ClassOK, cms.ClassTransient, cms.ClassTransient, cms.ClassTransient}
	f := &scriptedLister{classes: answers}
	s := &streakLister{l: f, limit: 3}
	var got []cms.Class
	for range answers {
		got = append(got, s.List(t.Context(), cms.ListRequest{}).Class)
	}
	want := []cms.Class{cms.ClassTransient, cms.ClassTransient, cms.ClassOK, cms.ClassTransient, cms.ClassTransient, cms.ClassFatal}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("classes %v, want %v", got, want)
	}
	never := &streakLister{l: &scriptedLister{classes: answers}, limit: -1}
	for range answers {
		if never.List(t.Context(), cms.ListRequest{}).Class == cms.ClassFatal {
			t.Error("--max-transient-streak -1 stopped the discovery")
		}
	}
}

type scriptedLister struct {
	classes []cms.Class
	n       int
}

func (s *scriptedLister) List(context.Context, cms.ListRequest) cms.ListResult {
	c := s.classes[s.n%len(s.classes)]
	s.n++
	return cms.ListResult{Class: c, Message: c.String()}
}

// kill -9 during a discovery, then the same command again: every call is
// in cms.call_record, its Parquet dataset and the queue exactly once.
func TestDiscoverKilledThenRerun(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := scheduleHarness(t, 5, func(cfg *cmssim.Config, _ *cmssim.CallsConfig) { cfg.Latency = 10 * time.Millisecond })
	day := yesterday()
	from, to := day, day.Add(6*time.Hour)
	want := listed(h, from, to)
	out := filepath.Join(h.dir, "records")
	args := discoverArgs(h, "--output", "postgres,parquet:"+out, "--database-url", url, "--enqueue", "cdr",
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--rate", "8", "--concurrency", "2",
		"--commit-interval", "200ms", "--commit-rows", "50")
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool { return count(t, db, "SELECT count(*) FROM cms.call_record") >= 150 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := count(t, db, "SELECT count(*) FROM cms.call_record"); n >= int64(len(want)) {
		skipOrFail(t, "the discovery finished before the kill (%d rows): %s", n, stderr.String())
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_record r WHERE NOT EXISTS (SELECT 1 FROM cms.call_queue q WHERE (q.cc_id, q.vdn, q.call_id) = (r.cc_id, r.vdn, r.call_id))"); n != 0 {
		t.Errorf("%d calls committed without their queue row", n)
	}

	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK {
		t.Fatalf("rerun exit %d:\n%s", o.code, tail(o.stderr, 4000))
	}
	checkRecords(t, db, out, want)
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'cdr' AND is_call_in IS NOT NULL"); n != int64(len(want)) {
		t.Errorf("%d calls queued, want %d", n, len(want))
	}
	if n := count(t, db, "SELECT count(*) FROM cms.etl_run WHERE status = 'abandoned'"); n != 1 {
		t.Errorf("%d runs marked abandoned, want the killed one", n)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(out, "*", "*.tmp")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// kill -9 during the CDR run, then the same command again once the killed
// run's leases ran out: every queued call has its CDR exactly once, in
// cms.call_detail and in the Parquet dataset, and its queue row is done.
func TestCDRRunKilledThenRerun(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := scheduleHarness(t, 5, func(cfg *cmssim.Config, _ *cmssim.CallsConfig) { cfg.Latency = 5 * time.Millisecond })
	day := yesterday()
	from, to := day, day.Add(4*time.Hour)
	want := listed(h, from, to)
	o := h.run(discoverArgs(h, "--output", "postgres", "--database-url", url, "--enqueue", "cdr", "--rate", "0",
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))...)
	if o.code != ExitOK {
		t.Fatalf("discover exit %d:\n%s", o.code, tail(o.stderr, 3000))
	}
	out := filepath.Join(h.dir, "details")
	args := cdrArgs(h, url, "--output", "postgres,parquet:"+out, "--rate", "150", "--lease", "5s",
		"--commit-interval", "200ms", "--commit-rows", "50")
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool { return count(t, db, "SELECT count(*) FROM cms.call_detail") >= 200 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'cdr' AND status IN ('pending', 'running')"); n == 0 {
		skipOrFail(t, "the run finished before the kill: %s", stderr.String())
	}
	if set, st, err := parquet.CommittedKeys(t.Context(), out, nil); err == nil {
		set.Close()
		if int64(st.Rows) < count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'cdr' AND status = 'done'") {
			t.Errorf("queue rows done before their Parquet rows committed")
		}
	}
	time.Sleep(5500 * time.Millisecond) // the killed run's leases run out
	o = h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK {
		t.Fatalf("rerun exit %d:\n%s", o.code, tail(o.stderr, 4000))
	}
	checkDetails(t, h, db, out, want)
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'cdr' AND status = 'done'"); n != int64(len(want)) {
		t.Errorf("%d queue rows done, want %d", n, len(want))
	}
}
