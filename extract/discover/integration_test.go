package discover_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/internal/cmssim"
)

var creds = authv2.Credentials{AK: "discoverAK", SK: "discoverSK"}

// simulatedDay starts the simulator over TLS with a schedule for two VDNs at
// several calls a minute (more than 100 per hour and direction), its clock
// at 01:00 UTC the day after, and a client trusting its certificate.
func simulatedDay(t *testing.T, shortPages float64) (*cmssim.Server, *cms.Client, time.Time) {
	t.Helper()
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := day.Add(25 * time.Hour)
	calls := cmssim.DefaultCalls()
	calls.VDNs = []cmssim.VDN{{CCID: 1, VDN: 25}, {CCID: 1, VDN: 26}}
	calls.CallsPerMinute = 4
	calls.ShortPageShare = shortPages
	calls.Now = func() time.Time { return now }
	sim, err := cmssim.Start(t.Context(), cmssim.Config{TLS: true, Credentials: creds, Seed: 11, Calls: &calls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c, err := cms.New(cms.Config{BaseURL: sim.URL(), Credentials: creds, CAFile: sim.CAFile(), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return sim, c, day
}

// TestDiscoverASimulatedDay discovers a whole day of two VDNs in both
// directions through the real client over HTTPS, with pages that come back
// short so that the self-check must bisect: the set found equals the
// simulator's own list, each call once, with its direction.
func TestDiscoverASimulatedDay(t *testing.T) {
	t.Parallel()
	for _, short := range []float64{0, 0.3} {
		sim, client, day := simulatedDay(t, short)
		cfg := discover.Config{CCID: 1, VDNs: []int{25, 26}, From: day, To: day.Add(24 * time.Hour),
			Inbound: true, Outbound: true, Concurrency: 4, Now: sim.Schedule().Now}
		var mu sync.Mutex
		got := map[string]bool{}
		res, err := discover.Run(t.Context(), cfg, client, func(_ context.Context, s discover.Slice) error {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range s.Calls {
				id := c.Key.String() + map[bool]string{true: "/in", false: "/out"}[c.Inbound]
				if got[id] {
					t.Errorf("%s emitted twice", id)
				}
				got[id] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed() {
			t.Fatalf("short %v: failures %v", short, res.Failures)
		}
		var want []string
		for _, vdn := range []int{25, 26} {
			for _, c := range sim.Schedule().Listed(1, vdn, day, day.Add(24*time.Hour-time.Millisecond), cmssim.DirectionBoth, sim.Schedule().Now()) {
				want = append(want, c.Key().String()+map[bool]string{true: "/in", false: "/out"}[c.Inbound])
			}
		}
		var gotList []string
		for id := range got {
			gotList = append(gotList, id)
		}
		slices.Sort(want)
		slices.Sort(gotList)
		if len(want) < 4*60*24 || !slices.Equal(gotList, want) {
			t.Fatalf("short %v: discovered %d calls, the simulator lists %d", short, len(gotList), len(want))
		}
		bisections, pages := 0, 0
		for _, ta := range res.Tallies {
			bisections += ta.Bisections
			pages += ta.Pages
			if ta.Kept != ta.Reported {
				t.Errorf("tally %+v: kept differs from reported", ta)
			}
		}
		if (bisections > 0) != (short > 0) {
			t.Errorf("short %v: %d bisections", short, bisections)
		}
		if st := sim.Stats(); st.ByEndpoint[cmssim.EndpointQueryCalls] != int64(pages) {
			t.Errorf("the simulator answered %d querycalls requests, the tallies count %d pages", st.ByEndpoint[cmssim.EndpointQueryCalls], pages)
		}
		t.Logf("short pages %v: %d calls, %d pages, %d bisections", short, len(gotList), pages, bisections)
	}
}

// TestCallDetailShapes asks the simulator's CDRs through the real client:
// the flat body first, and against a server that only takes Huawei's
// wrapped sample shape, one fallback that is then kept.
func TestCallDetailShapes(t *testing.T) {
	t.Parallel()
	for _, shape := range []string{cmssim.CDRBodyFlat, cmssim.CDRBodyWrapped} {
		day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		now := day.Add(25 * time.Hour)
		calls := cmssim.DefaultCalls()
		calls.VDNs = []cmssim.VDN{{CCID: 1, VDN: 25}}
		calls.CDRBodyShape = shape
		calls.CDRAgentIDSpace = true
		calls.Now = func() time.Time { return now }
		sim, err := cmssim.Start(t.Context(), cmssim.Config{TLS: true, Credentials: creds, Seed: 3, Calls: &calls})
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		client, err := cms.New(cms.Config{BaseURL: sim.URL(), Credentials: creds, CAFile: sim.CAFile()})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		listed := sim.Schedule().Listed(1, 25, day, day.Add(2*time.Hour), cmssim.DirectionBoth, now)
		if len(listed) < 20 {
			t.Fatalf("only %d calls scheduled", len(listed))
		}
		requests := 0
		for i, c := range listed[:20] {
			res := cms.Fetch(t.Context(), client, cms.CallDetailByID, cms.Request{Key: c.Key(), Inbound: c.Inbound})
			requests += res.Attempts
			if res.Class != cms.ClassOK {
				t.Fatalf("%s %v: class %v %s", shape, c.Key(), res.Class, res.Message)
			}
			want := sim.Schedule().CDR(c)
			if c.Answered() && (res.Record.AgentID == nil || *res.Record.AgentID != int64(want.AgentID)) {
				t.Errorf("%v: agentId %v, want %d (sent as \"agentId \")", c.Key(), res.Record.AgentID, want.AgentID)
			}
			if i == 0 && shape == cmssim.CDRBodyWrapped && res.Attempts != 2 {
				t.Errorf("first wrapped call took %d attempts, want the flat one and the wrapped one", res.Attempts)
			}
		}
		if shape == cmssim.CDRBodyWrapped && requests != 21 {
			t.Errorf("wrapped: %d requests for 20 calls, want 21: the shape is kept after the first fallback", requests)
		}
		// A wrong direction is "no data" for the CDR interface.
		c := listed[0]
		if res := cms.Fetch(t.Context(), client, cms.CallDetailByID, cms.Request{Key: c.Key(), Inbound: !c.Inbound}); res.Class != cms.ClassNoData {
			t.Errorf("wrong direction: class %v, want no_data", res.Class)
		}
	}
}
