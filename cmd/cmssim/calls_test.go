package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// waitForFile polls until path exists and returns its content.
func waitForFile(t *testing.T, path string, done <-chan error, logs *syncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return string(b)
		}
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGenerateAndEnqueue runs the command with a schedule and the
// generator: each call is written to the CSV and inserted into a real
// cms.call_queue at its start, and the server answers querybasiccallinfo for
// it while it is live.
func TestGenerateAndEnqueue(t *testing.T) {
	pool, dbURL := pgtest.Migrated(t)
	dir := t.TempDir()
	addrFile, csvFile := filepath.Join(dir, "addr"), filepath.Join(dir, "calls.csv")
	t.Setenv("DATABASE_URL", dbURL)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--addr-file", addrFile, "--tls=false",
			"--calls-per-minute", "300", "--vdns", "7,2:9", "--cc-id", "3", "--enqueue", "--generate-csv", csvFile,
			"--generate-for", "3s", "--log-level", "debug"}, &logs)
	}()
	base := strings.TrimSpace(waitForFile(t, addrFile, done, &logs))

	// The generator stops after 3 s; the server keeps serving.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "cmssim generator stopped") {
		if time.Now().After(deadline) {
			t.Fatalf("generator did not stop:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rows, err := csv.NewReader(strings.NewReader(waitForFile(t, csvFile, done, &logs))).ReadAll()
	if err != nil || len(rows) < 2 || !slices.Equal(rows[0], []string{"ccId", "vdn", "callId", "isCallIn"}) {
		t.Fatalf("csv: %v %v", rows, err)
	}
	rows = rows[1:]
	// About 300 calls a minute per VDN for 3 s: 2 VDNs, ~30 calls.
	if len(rows) < 10 || len(rows) > 60 {
		t.Errorf("%d calls generated in 3 s", len(rows))
	}

	type queued struct {
		cc, vdn  int
		id       string
		enqueued time.Time
	}
	var got []queued
	qr, err := pool.Query(t.Context(), `SELECT cc_id, vdn, call_id, enqueued_at FROM cms.call_queue WHERE status = 'pending' ORDER BY enqueued_at, call_id`)
	must(t, err)
	for qr.Next() {
		var q queued
		must(t, qr.Scan(&q.cc, &q.vdn, &q.id, &q.enqueued))
		got = append(got, q)
	}
	must(t, qr.Err())
	if len(got) != len(rows) {
		t.Fatalf("%d queued rows, %d csv rows", len(got), len(rows))
	}
	byID := map[string]queued{}
	for _, q := range got {
		byID[q.id] = q
	}
	for _, row := range rows {
		q, ok := byID[row[2]]
		if !ok || strconv.Itoa(q.cc) != row[0] || strconv.Itoa(q.vdn) != row[1] {
			t.Fatalf("csv row %v not queued as such: %+v", row, q)
		}
		if !(q.cc == 3 && q.vdn == 7 || q.cc == 2 && q.vdn == 9) {
			t.Errorf("unexpected key %+v", q)
		}
		// Inserted at the call's start: after the second of its prefix
		// began, and well within a second of it.
		sec, _ := strconv.ParseInt(strings.Split(q.id, "-")[0], 10, 64)
		if lag := q.enqueued.Sub(time.Unix(sec, 0)); lag < 0 || lag > 2*time.Second || q.enqueued.Before(started) {
			t.Errorf("%s enqueued %v after its start second", q.id, lag)
		}
	}

	// The newest call is probably still live: its key answers with data,
	// or with no data once it ended; an unknown key never has data.
	c := newTestClient(t, base)
	last := rows[len(rows)-1]
	cc, _ := strconv.Atoi(last[0])
	vdn, _ := strconv.Atoi(last[1])
	body, _ := json.Marshal(map[string]any{"ccId": cc, "vdn": vdn, "callId": last[2]})
	status, resp := c.post(t, cmssim.PathQuery, body)
	if status != 200 || !bytes.Contains(resp, []byte(`"0`)) {
		t.Errorf("querybasiccallinfo: %d %s", status, resp)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	out := logs.String()
	if strings.Contains(out, dbURL) {
		t.Errorf("the database URL is logged:\n%s", out)
	}
	var stopped map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "cmssim generator stopped" {
			stopped = m
		}
	}
	if stopped["generated"] != float64(len(rows)) || stopped["enqueued"] != float64(len(rows)) || stopped["enqueue_failed"] != 0.0 {
		t.Errorf("generator summary %v, want %d generated and enqueued", stopped, len(rows))
	}
}

// TestEnqueueNeedsMigratedDatabase: --enqueue fails at start, naming the
// table, on a database without the schema.
func TestEnqueueNeedsMigratedDatabase(t *testing.T) {
	dbURL := pgtest.ConnString(t)
	var logs syncBuffer
	err := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--tls=false", "--calls-per-minute", "6",
		"--enqueue", "--database-url", dbURL}, &logs)
	if err == nil || !strings.Contains(err.Error(), "cms.call_queue") || strings.Contains(err.Error(), dbURL) {
		t.Errorf("err %v, want one naming cms.call_queue without the URL", err)
	}
}

func TestCallFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string // "" = valid
		vdns []cmssim.VDN
	}{
		{"no schedule", nil, "", nil},
		{"vdns", []string{"--calls-per-minute", "6", "--vdns", "25, 26,2:7", "--cc-id", "4"}, "", []cmssim.VDN{{CCID: 4, VDN: 25}, {CCID: 4, VDN: 26}, {CCID: 2, VDN: 7}}},
		{"bad vdn", []string{"--calls-per-minute", "6", "--vdns", "x"}, "--vdns", nil},
		{"vdn out of range", []string{"--calls-per-minute", "6", "--vdns", "5001"}, "Calls.VDNs", nil},
		{"empty vdns", []string{"--calls-per-minute", "6", "--vdns", ","}, "--vdns", nil},
		{"zone", []string{"--calls-per-minute", "6", "--tenant-zone", "Mars/Olympus"}, "--tenant-zone", nil},
		{"shape", []string{"--calls-per-minute", "6", "--cdr-body", "nested"}, "Calls.CDRBodyShape", nil},
		{"share", []string{"--calls-per-minute", "6", "--abandon-share", "2"}, "Calls.AbandonShare", nil},
		{"generate without schedule", []string{"--generate-csv", "-"}, "--calls-per-minute", nil},
		{"enqueue without database", []string{"--calls-per-minute", "6", "--enqueue"}, "--database-url", nil},
		{"negative generate-for", []string{"--calls-per-minute", "6", "--generate-csv", "x", "--generate-for", "-1s"}, "--generate-for", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet()
			var f callFlags
			f.register(fs)
			must(t, fs.Parse(tc.args))
			var cfg cmssim.Config
			cfg.Credentials.AK, cfg.Credentials.SK = "a", "b"
			err := f.apply(&cfg, func(string) string { return "" })
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err %v, want one mentioning %s", err, tc.want)
			case tc.vdns != nil && (cfg.Calls == nil || !slices.Equal(cfg.Calls.VDNs, tc.vdns)):
				t.Errorf("vdns %+v, want %v", cfg.Calls, tc.vdns)
			}
		})
	}
	// The flag defaults are the library's defaults.
	fs := newFlagSet()
	var f callFlags
	f.register(fs)
	must(t, fs.Parse([]string{"--calls-per-minute", "6"}))
	var cfg cmssim.Config
	must(t, f.apply(&cfg, os.Getenv))
	want := cmssim.DefaultCalls()
	want.TenantZone = time.UTC
	if got := *cfg.Calls; got.InboundShare != want.InboundShare || got.AbandonShare != want.AbandonShare ||
		got.MinDuration != want.MinDuration || got.MaxDuration != want.MaxDuration || got.SettleDelay != want.SettleDelay ||
		got.CDRBodyShape != want.CDRBodyShape || !slices.Equal(got.VDNs, want.VDNs) || got.TenantZone != time.UTC {
		t.Errorf("flag defaults %+v, library defaults %+v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("cmssim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// testClient signs requests to a plain-HTTP simulator with the default
// credentials.
type testClient struct {
	hc   *http.Client
	base string
}

func newTestClient(t *testing.T, base string) *testClient {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &testClient{hc: &http.Client{Transport: tr}, base: base}
}

func (c *testClient) post(t *testing.T, path string, body []byte) (int, []byte) {
	t.Helper()
	u, err := url.Parse(c.base + path)
	must(t, err)
	auth, err := authv2.Sign(authv2.Credentials{AK: "demoAK", SK: "demoSK"}, time.Now().UTC().Format(authv2.LayoutSeconds), "host",
		authv2.Request{Method: "POST", Path: u.Path, Body: body, Headers: map[string]string{"host": u.Host}})
	must(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u.String(), bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", auth)
	resp, err := c.hc.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, b
}
