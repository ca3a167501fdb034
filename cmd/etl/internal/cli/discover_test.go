package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgo "github.com/parquet-go/parquet-go"

	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// The discovery tests run etl and the simulator on one clock, testNow
// (noon of the day the tests started, at the real pace): etl decides its
// window ("yesterday") and the simulator applies the API's window rule and
// retention with the same clock, as a tenant would.

// yesterday is the day etl discover lists by default (--tz UTC).
func yesterday() time.Time { return testNow().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1) }

// scheduleHarness starts the simulator over TLS with a call schedule for
// VDNs 25 and 26 of call center 1 at perMinute calls a minute each, half of
// them inbound; edit adjusts the schedule and the simulator.
func scheduleHarness(t *testing.T, perMinute float64, edit func(*cmssim.Config, *cmssim.CallsConfig)) *harness {
	t.Helper()
	calls := cmssim.DefaultCalls()
	calls.VDNs = []cmssim.VDN{{CCID: 1, VDN: 25}, {CCID: 1, VDN: 26}}
	calls.CallsPerMinute = perMinute
	calls.InboundShare = 0.5
	calls.Now = testNow
	cfg := cmssim.Config{Calls: &calls}
	if edit != nil {
		edit(&cfg, &calls)
	}
	return newHarness(t, cfg)
}

// discoverArgs is an etl discover command line against h's simulator.
func discoverArgs(h *harness, more ...string) []string {
	return append([]string{"discover", "--cc-id", "1", "--vdn", "25,26",
		"--api-url", h.sim.URL(), "--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile(),
		"--progress", "none", "--log-format", "json", "--request-timeout", "5s"}, more...)
}

// cdrArgs is an etl run of the CDRs of the queued calls (more holds the
// --output).
func cdrArgs(h *harness, url string, more ...string) []string {
	return append([]string{"run", "--input", "queue", "--query", "cdr", "--database-url", url,
		"--api-url", h.sim.URL(), "--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile(),
		"--progress", "none", "--log-format", "json", "--request-timeout", "5s"}, more...)
}

// listed is what the simulator lists for VDNs 25 and 26 in [from, to), by key.
func listed(h *harness, from, to time.Time) map[string]cmssim.Call {
	out := map[string]cmssim.Call{}
	s := h.sim.Schedule()
	for _, vdn := range []int{25, 26} {
		for _, c := range s.Listed(1, vdn, from, to.Add(-time.Millisecond), cmssim.DirectionBoth, s.Now()) {
			out[c.Key().String()] = c
		}
	}
	return out
}

// minimumPages is the fewest querycalls pages that list calls with slices
// of one hour: one page per 100 calls (at least one) per slice, VDN and
// direction.
func minimumPages(calls map[string]cmssim.Call, from, to time.Time) int {
	perSlice := map[string]int{}
	for _, c := range calls {
		perSlice[fmt.Sprintf("%d/%v/%d", c.VDN, c.Inbound, c.WaitBegin.Sub(from)/time.Hour)]++
	}
	pages := 0
	for _, vdn := range []int{25, 26} {
		for _, in := range []bool{true, false} {
			for h := range int(to.Sub(from) / time.Hour) {
				pages += max(1, (perSlice[fmt.Sprintf("%d/%v/%d", vdn, in, h)]+99)/100)
			}
		}
	}
	return pages
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// readDataset reads every committed part file under dir with the
// independent parquet-go reader: one map per row, by column name; int32,
// int64 (timestamps as UTC microseconds), string, bool or nil.
func readDataset(t *testing.T, dir string) []map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "call_date=*", "part-*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		pf, err := pgo.OpenFile(f, st.Size())
		if err != nil {
			t.Fatalf("parquet-go cannot open %s: %v", path, err)
		}
		var names []string
		for _, col := range pf.Schema().Columns() {
			names = append(names, col[0])
		}
		for _, rg := range pf.RowGroups() {
			rows := rg.Rows()
			buf := make([]pgo.Row, 128)
			for {
				n, err := rows.ReadRows(buf)
				for _, r := range buf[:n] {
					m := map[string]any{}
					for _, v := range r {
						var x any
						switch {
						case v.IsNull():
						case v.Kind() == pgo.Int32:
							x = v.Int32()
						case v.Kind() == pgo.Int64:
							x = v.Int64()
						case v.Kind() == pgo.ByteArray:
							x = string(v.ByteArray())
						case v.Kind() == pgo.Boolean:
							x = v.Boolean()
						default:
							t.Fatalf("%s: column %s: kind %v", path, names[v.Column()], v.Kind())
						}
						m[names[v.Column()]] = x
					}
					out = append(out, m)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
			}
			rows.Close()
		}
		f.Close()
	}
	return out
}

func datasetKey(r map[string]any) string {
	return fmt.Sprintf("%d/%d/%s", r["cc_id"], r["vdn"], r["call_id"])
}

// keptInbound is the direction etl discover keeps for c: its own, inbound
// when both passes list it.
func keptInbound(c cmssim.Call) bool { return c.Inbound || c.BothPasses }

// checkRecords: cms.call_record and the call_record dataset hold each
// listed call exactly once, as the simulator lists it.
func checkRecords(t *testing.T, db *pgxpool.Pool, dir string, want map[string]cmssim.Call) {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT cc_id || '/' || vdn || '/' || call_id, is_call_in, listed_both_directions, raw::text, wait_begin, call_end,
		call_type, leave_reason, media_type, call_type_label IS NOT NULL FROM cms.call_record`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		key, raw               string
		in, both, labelled     bool
		waitBegin, callEnd     time.Time
		callType, leave, media int32
		got, bad               int
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &in, &both, &raw, &waitBegin, &callEnd, &callType, &leave, &media, &labelled}, func() error {
		got++
		c, ok := want[key]
		switch {
		case !ok:
			t.Errorf("cms.call_record holds %s, which the simulator does not list", key)
		case in != keptInbound(c) || both != c.BothPasses || !sameJSON(t, []byte(raw), c.QueryCallsRow()) || !waitBegin.Equal(c.ListedWaitBegin()) ||
			!callEnd.Equal(c.CallEnd) || int(callType) != c.CallType || int(leave) != c.LeaveReason || int(media) != c.MediaType || !labelled:
			if bad++; bad <= 5 {
				t.Errorf("%s: in %v both %v raw %s wait %v end %v; the simulator lists %+v", key, in, both, raw, waitBegin, callEnd, c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("cms.call_record has %d rows, the simulator lists %d calls", got, len(want))
	}
	if dir == "" {
		return
	}
	seen := map[string]bool{}
	for _, r := range readDataset(t, dir) {
		k := datasetKey(r)
		c, ok := want[k]
		switch {
		case seen[k]:
			t.Errorf("the call_record dataset holds %s twice", k)
		case !ok:
			t.Errorf("the call_record dataset holds %s, which the simulator does not list", k)
		case r["is_call_in"] != keptInbound(c) || r["listed_both_directions"] != c.BothPasses || r["wait_begin"] != c.ListedWaitBegin().UnixMicro() ||
			r["leave_reason"] != int32(c.LeaveReason):
			t.Errorf("%s in Parquet: %v; the simulator lists %+v", k, r, c)
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		t.Errorf("the call_record dataset has %d calls, the simulator lists %d", len(seen), len(want))
	}
}

// checkDetails: cms.call_detail and the call_detail dataset hold the CDR of
// each listed call exactly once, as the simulator serves it.
func checkDetails(t *testing.T, h *harness, db *pgxpool.Pool, dir string, want map[string]cmssim.Call) {
	t.Helper()
	s := h.sim.Schedule()
	rows, err := db.Query(t.Context(), `SELECT cc_id || '/' || vdn || '/' || call_id, is_call_in, raw::text,
		coalesce(agent_id, 0), call_seconds, release_cause, release_cause_label FROM cms.call_detail`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		key, raw, label string
		in              bool
		agent, talk     int64
		cause           int32
		got, bad        int
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &in, &raw, &agent, &talk, &cause, &label}, func() error {
		got++
		c, ok := want[key]
		if !ok {
			t.Errorf("cms.call_detail holds %s, which the simulator does not list", key)
			return nil
		}
		cdr := s.CDR(c)
		if in != keptInbound(c) || !sameJSON(t, []byte(raw), s.CDRObject(c)) || agent != int64(cdr.AgentID) || talk != int64(cdr.CallTime) ||
			cause != int32(cdr.ReleaseCause) || label == "" {
			if bad++; bad <= 5 {
				t.Errorf("%s: in %v agent %d talk %d cause %d %q raw %s; the simulator serves %s", key, in, agent, talk, cause, label, raw, s.CDRObject(c))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("cms.call_detail has %d rows, the simulator lists %d calls", got, len(want))
	}
	if dir == "" {
		return
	}
	seen := map[string]bool{}
	for _, r := range readDataset(t, dir) {
		k := datasetKey(r)
		c, ok := want[k]
		if seen[k] {
			t.Errorf("the call_detail dataset holds %s twice", k)
		}
		seen[k] = true
		if !ok {
			t.Errorf("the call_detail dataset holds %s, which the simulator does not list", k)
			continue
		}
		cdr := s.CDR(c)
		var agent any
		if cdr.AgentID != 0 {
			agent = int64(cdr.AgentID)
		}
		if r["is_call_in"] != keptInbound(c) || r["call_seconds"] != int64(cdr.CallTime) || r["agent_id"] != agent || r["release_cause"] != int32(cdr.ReleaseCause) {
			t.Errorf("%s in Parquet: %v; the simulator serves %s", k, r, s.CDRObject(c))
		}
	}
	if len(seen) != len(want) {
		t.Errorf("the call_detail dataset has %d calls, the simulator lists %d", len(seen), len(want))
	}
}

func discoveryOf(t *testing.T, o runOutput) map[string]any {
	t.Helper()
	d, ok := o.summary["discovery"].(map[string]any)
	if !ok {
		t.Fatalf("the run_summary event has no discovery member (exit %d):\n%s", o.code, tail(o.stderr, 4000))
	}
	return d
}

// TestDiscoverADayThenItsCDRs is the nightly recipe end to end, against a
// simulated day of two VDNs at five calls a minute each (about 150 calls
// per hour and direction, so every slice takes two pages) whose pages come
// back short now and then: etl discover lists every call the simulator
// lists, once, bisecting the slices whose pages do not add up, into
// cms.call_record and its Parquet dataset, and queues them; etl run --query
// cdr stores each call's CDR as the simulator serves it. Both reruns write
// nothing twice.
func TestDiscoverADayThenItsCDRs(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := scheduleHarness(t, 5, func(_ *cmssim.Config, c *cmssim.CallsConfig) { c.ShortPageShare, c.BothPassesShare = 0.3, 0.02 })
	day := yesterday()
	want := listed(h, day, day.Add(24*time.Hour))
	both := 0
	for _, c := range want {
		if c.BothPasses {
			both++
		}
	}
	records, details := filepath.Join(h.dir, "call_record"), filepath.Join(h.dir, "call_detail")
	args := discoverArgs(h, "--output", "postgres,parquet:"+records, "--database-url", url, "--enqueue", "cdr", "--rate", "0")

	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK {
		t.Fatalf("discover exit %d:\n%s", o.code, tail(o.stderr, 4000))
	}
	if o.outcome("loaded") != int64(len(want)) || len(want) < 2*5*60*24*9/10 {
		t.Fatalf("discover loaded %d calls, the simulator lists %d", o.outcome("loaded"), len(want))
	}
	checkRecords(t, db, records, want)
	d := discoveryOf(t, o)
	total := d["total"].(map[string]any)
	pages := int64(total["pages"].(float64))
	if total["bisections"].(float64) == 0 || total["count_reported"] != float64(len(want)+both) || total["rows_kept"] != float64(len(want)) ||
		total["both_directions"] != float64(both) || total["duplicates_same_pass"] != 0.0 || total["slices_failed"] != 0.0 || total["slices_open"] != 0.0 || both == 0 {
		t.Errorf("discovery totals %v: want bisections, every call reported kept, the %d calls both passes list kept once", total, both)
	}
	for _, by := range d["by_vdn_direction"].([]any) {
		m := by.(map[string]any)
		if m["count_reported"] != m["rows_kept"].(float64)+m["rows_rejected"].(float64)+m["both_directions"].(float64)+m["duplicates_same_pass"].(float64) ||
			m["direction"] == "in" && m["both_directions"] != 0.0 {
			t.Errorf("vdn %v %v does not reconcile: %v", m["vdn"], m["direction"], m)
		}
	}
	if !strings.Contains(o.stderr, `"both_directions":`+strconv.Itoa(both)) {
		t.Errorf("no warning about the %d calls both passes listed", both)
	}
	st := h.sim.Stats()
	if st.ByEndpoint[cmssim.EndpointQueryCalls] != pages || int64(o.num("requests")) != pages {
		t.Errorf("the summary counts %d pages and %v requests, the simulator answered %d", pages, o.num("requests"), st.ByEndpoint[cmssim.EndpointQueryCalls])
	}
	t.Logf("%d calls; %d pages (minimum %d), %v bisections", len(want), pages, minimumPages(want, day, day.Add(24*time.Hour)), total["bisections"])
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue q JOIN cms.call_record r USING (cc_id, vdn, call_id) WHERE q.query = 'cdr' AND q.status = 'pending' AND q.is_call_in = r.is_call_in"); n != int64(len(want)) {
		t.Errorf("%d calls queued for their CDR with their direction, want %d", n, len(want))
	}
	if q := d["enqueued"].(map[string]any)["cdr"].(map[string]any); q["inserted"] != float64(len(want)) {
		t.Errorf("enqueued %v, want %d inserted", q, len(want))
	}
	var status string
	if err := db.QueryRow(t.Context(), "SELECT status FROM cms.etl_run WHERE summary ? 'discovery'").Scan(&status); err != nil || status != "succeeded" {
		t.Errorf("cms.etl_run: %q %v", status, err)
	}

	// The CDRs of the queued calls.
	o = h.run(cdrArgs(h, url, "--output", "postgres,parquet:"+details, "--rate", "0", "--concurrency", "16")...)
	checkAccounting(t, o)
	if o.code != ExitOK || o.outcome("loaded") != int64(len(want)) {
		t.Fatalf("run --query cdr exit %d, loaded %d of %d:\n%s", o.code, o.outcome("loaded"), len(want), tail(o.stderr, 4000))
	}
	checkDetails(t, h, db, details, want)
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE query = 'cdr' AND status = 'done'"); n != int64(len(want)) {
		t.Errorf("%d cdr queue rows done, want %d", n, len(want))
	}

	// Reruns: nothing is written twice, nothing queued twice, nothing asked
	// again.
	o = h.run(args...)
	if o.code != ExitOK || o.outcome("already_loaded") != int64(len(want)) || o.outcome("loaded") != 0 {
		t.Errorf("discover rerun: exit %d, outcomes %v", o.code, o.summary["outcomes"])
	}
	if q := discoveryOf(t, o)["enqueued"].(map[string]any)["cdr"].(map[string]any); q["inserted"] != 0.0 || q["already_queued"] != float64(len(want)) {
		t.Errorf("discover rerun enqueued %v", q)
	}
	before := h.sim.Stats().ByEndpoint[cmssim.EndpointCallDetail]
	o = h.run(cdrArgs(h, url, "--output", "postgres,parquet:"+details, "--rate", "0")...)
	if o.code != ExitOK || o.num("rows_read") != 0 || h.sim.Stats().ByEndpoint[cmssim.EndpointCallDetail] != before {
		t.Errorf("cdr rerun: exit %d, read %v, outcomes %v", o.code, o.num("rows_read"), o.summary["outcomes"])
	}
	checkRecords(t, db, records, want)
	checkDetails(t, h, db, details, want)
	checkREADMESQL(t, db, day)
}

// checkREADMESQL runs each statement of README.md's ```sql blocks on the
// finished calls of day (the examples' dates moved to it): each must run
// and return rows.
func checkREADMESQL(t *testing.T, db *pgxpool.Pool, day time.Time) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for _, block := range strings.Split(string(b), "```sql\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		for _, stmt := range strings.Split(block, ";\n") {
			if strings.TrimSpace(stmt) != "" {
				stmts = append(stmts, stmt)
			}
		}
	}
	if len(stmts) < 3 {
		t.Fatalf("README.md has %d SQL statements in ```sql blocks, want the finished-call examples", len(stmts))
	}
	r := strings.NewReplacer("2026-12-01", day.Format(time.DateOnly), "2026-12-02", day.AddDate(0, 0, 1).Format(time.DateOnly))
	for _, stmt := range stmts {
		rows, err := db.Query(t.Context(), r.Replace(stmt))
		if err != nil {
			t.Errorf("README SQL fails: %v\n%s", err, stmt)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil || n == 0 {
			t.Errorf("README SQL returned %d rows (%v):\n%s", n, err, stmt)
		}
	}
}

// Usage errors of etl discover name the flag; a window the API does not
// keep is refused before any request, saying why.
func TestDiscoverUsageErrorsNameTheFlag(t *testing.T) {
	t.Setenv("CMS_SK", "s3cr3t-value")
	t.Setenv("DATABASE_URL", "")
	base := []string{"--api-url", "https://127.0.0.1:1", "--ak", "ak"}
	day := yesterday()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no cc-id", []string{"--vdn", "25", "--output", "parquet:x"}, "--cc-id is required"},
		{"no vdn", []string{"--cc-id", "1", "--output", "parquet:x"}, "--vdn is required"},
		{"bad vdn", []string{"--cc-id", "1", "--vdn", "25,x", "--output", "parquet:x"}, `--vdn "x"`},
		{"vdn out of range", []string{"--cc-id", "1", "--vdn", "5001", "--output", "parquet:x"}, "--vdn 5001"},
		{"vdn twice", []string{"--cc-id", "1", "--vdn", "25,25", "--output", "parquet:x"}, "--vdn 25: given twice"},
		{"cc-id out of range", []string{"--cc-id", "70000", "--vdn", "25", "--output", "parquet:x"}, "--cc-id 70000"},
		{"no output", []string{"--cc-id", "1", "--vdn", "25"}, "--output is required"},
		{"bad output", []string{"--cc-id", "1", "--vdn", "25", "--output", "s3:x"}, `--output "s3:x"`},
		{"postgres without db", []string{"--cc-id", "1", "--vdn", "25", "--output", "postgres"}, "--database-url"},
		{"enqueue without db", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--enqueue", "cdr"}, "--database-url (or DATABASE_URL) is required with --output postgres or --enqueue"},
		{"bad enqueue", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--enqueue", "live"}, `--enqueue "live"`},
		{"bad direction", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--direction", "inbound"}, `--direction "inbound"`},
		{"bad tz", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--tz", "Mars/Olympus"}, `--tz "Mars/Olympus"`},
		{"bad day", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--day", "01/12/2026"}, `--day "01/12/2026"`},
		{"day and from", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--day", "2026-12-01", "--from", "2026-12-01T00:00:00Z"}, "--day and --from/--to"},
		{"from without to", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--from", "2026-12-01T00:00:00Z"}, "--from and --to go together"},
		{"bad from", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--from", "yesterday", "--to", "2026-12-01T00:00:00Z"}, `--from "yesterday"`},
		{"to before from", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x",
			"--from", day.Add(2 * time.Hour).Format(time.RFC3339), "--to", day.Add(time.Hour).Format(time.RFC3339)}, "must be after --from"},
		{"slice too short", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--slice", "10s"}, "--slice 10s"},
		{"concurrency", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--concurrency", "100"}, "--concurrency 100"},
		{"rate", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--rate", "-1"}, "--rate"},
		{"unknown flag", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--input", "csv:x"}, "unknown flag --input"},
		{"window too old", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x", "--day", day.AddDate(0, 0, -1).Format(time.DateOnly)},
			"--day " + day.AddDate(0, 0, -1).Format(time.DateOnly) + ": window"},
		{"window in the future", []string{"--cc-id", "1", "--vdn", "25", "--output", "parquet:x",
			"--from", day.AddDate(0, 0, 1).Format(time.RFC3339), "--to", day.AddDate(0, 0, 3).Format(time.RFC3339)}, "querycalls holds finished calls for one day"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, terminal := range []bool{false, true} {
				var stdout, stderr strings.Builder
				code := Main(t.Context(), append(append([]string{"discover"}, base...), tc.args...),
					Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: terminal, Now: testNow})
				if code != ExitUsage {
					t.Fatalf("terminal=%v: exit %d, want %d; stderr:\n%s", terminal, code, ExitUsage, stderr.String())
				}
				if strings.Contains(stderr.String(), "s3cr3t-value") {
					t.Error("the SK appeared on stderr")
				}
				msg, hint := refusalOf(t, stderr.String(), terminal, "discover", ExitUsage)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("terminal=%v: refusal %q does not mention %q", terminal, msg, tc.want)
				}
				if strings.Contains(tc.name, "window") {
					if !strings.Contains(msg, "one day") || !strings.Contains(msg, "cannot be recovered") || !strings.Contains(hint, "as early as possible") {
						t.Errorf("the window refusal does not explain the retention: %q (hint %q)", msg, hint)
					}
				} else if hint == "" {
					t.Errorf("terminal=%v: no hint", terminal)
				}
			}
		})
	}
}

// Usage errors of the cdr query's flags, in etl run and etl enqueue.
func TestQueryFlagsUsageErrors(t *testing.T) {
	t.Setenv("CMS_SK", "s3cr3t-value")
	t.Setenv("DATABASE_URL", "")
	base := []string{"--api-url", "https://127.0.0.1:1", "--ak", "ak", "--input", "csv:a.csv", "--output", "parquet:x"}
	for _, tc := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"run", append([]string{"--query", "live"}, base...), `--query "live": want basic or cdr`},
		{"run", append([]string{"--direction", "in"}, base...), "--direction only applies with --query cdr"},
		{"run", append([]string{"--tz", "Asia/Shanghai"}, base...), "--tz only applies with --query cdr"},
		{"run", append([]string{"--query", "cdr", "--direction", "both"}, base...), `--direction "both": want in or out`},
		{"run", append([]string{"--query", "cdr", "--tz", "CST+8"}, base...), `--tz "CST+8"`},
		{"enqueue", []string{"--input", "csv:a.csv", "--query", "CDR", "--database-url", "postgres://h/db"}, `--query "CDR"`},
		{"enqueue", []string{"--input", "csv:a.csv", "--direction", "out", "--database-url", "postgres://h/db"}, "--direction only applies with --query cdr"},
	} {
		var stdout, stderr strings.Builder
		code := Main(t.Context(), append([]string{tc.cmd}, tc.args...), Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: true})
		msg, _ := refusalOf(t, stderr.String(), true, tc.cmd, ExitUsage)
		if code != ExitUsage || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %v: exit %d, %q; want 2 and %q", tc.cmd, tc.args, code, msg, tc.want)
		}
	}
}
