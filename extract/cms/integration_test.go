package cms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// Integration tests: the client against the simulator over real TLS.

func startSim(t *testing.T, cfg cmssim.Config) *cmssim.Server {
	t.Helper()
	if cfg.Credentials == (authv2.Credentials{}) {
		cfg.Credentials = testCreds
	}
	cfg.TLS = true
	srv, err := cmssim.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("cmssim.Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func simConfig(srv *cmssim.Server) Config {
	return Config{
		BaseURL:        srv.URL(),
		Credentials:    testCreds,
		CAFile:         srv.CAFile(),
		MaxAttempts:    5,
		RequestTimeout: 5 * time.Second,
		BackoffBase:    time.Millisecond,
		BackoffCap:     5 * time.Millisecond,
		MaxConns:       4,
	}
}

func simKey(i int) extract.Key {
	return extract.Key{CCID: 1 + i%3, VDN: 1 + i%7, CallID: fmt.Sprintf("1659513159%03d-%d", i%1000, 100000+i)}
}

// recordValues maps a record to the simulator's Fields form: int64 for
// numeric fields, string for text fields, absent when nil.
func recordValues(r *Record) map[string]any {
	m := map[string]any{}
	ints := map[string]*int64{
		"time": r.Time, "dsn": r.DSN, "handle": r.Handle, "server": r.Server, "mid": r.MID,
		"trunkNo": r.TrunkNo, "priority": r.Priority, "deviceType": r.DeviceType, "deviceNo": r.DeviceNo,
		"partyNum": r.PartyNum, "callFeature": r.CallFeature, "mediaType": r.MediaType, "place": r.Place,
		"waitTime": r.WaitTime, "totalTalkingTimes": r.TotalTalkingTimes, "logonTimes": r.LogonTimes,
		"serviceType": r.ServiceType, "callInCause": r.CallInCause, "enterReason": r.EnterReason,
	}
	texts := map[string]*string{
		"keyId": r.KeyID, "callingNum": r.CallingNum, "calledNum": r.CalledNum, "callSkill": r.CallSkill,
		"orgiCalledNum": r.OrgiCalledNum, "mediaBillType": r.MediaBillType,
	}
	for k, v := range ints {
		if v != nil {
			m[k] = *v
		}
	}
	for k, v := range texts {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

func TestSimHappyPath(t *testing.T) {
	t.Parallel()
	simCfg := cmssim.Config{NoDataShare: 0.2, PermanentShare: 0.2, Seed: 7}
	srv := startSim(t, simCfg)
	c := newTestClient(t, simConfig(srv))
	const n = 60
	results := make([]Result[Record], n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				results[i] = c.Query(t.Context(), simKey(i))
			}
		})
	}
	wg.Wait()
	counts := map[Class]int{}
	for i, res := range results {
		key := simKey(i)
		counts[res.Class]++
		plan := cmssim.PlanFor(simCfg, key)
		want := map[string]Class{cmssim.OutcomeOK: ClassOK, cmssim.OutcomeNoData: ClassNoData, cmssim.OutcomePermanent: ClassPermanent}[plan.Outcome]
		if res.Class != want || res.Attempts != 1 {
			t.Errorf("%v: %v after %d attempts (%s), want %v", key, res.Class, res.Attempts, res.Message, want)
			continue
		}
		switch res.Class {
		case ClassOK:
			exp := cmssim.ResponseFor(simCfg.Seed, key)
			if got := recordValues(res.Record); fmt.Sprint(got) != fmt.Sprint(exp.Fields) {
				t.Errorf("%v (%s envelope, quirks %v):\n got %v\nwant %v", key, exp.Envelope, exp.Quirks, got, exp.Fields)
			}
			if len(res.Raw) == 0 || !strings.Contains(string(exp.Body), string(res.Raw)) {
				t.Errorf("%v: Raw %s is not the object served", key, res.Raw)
			}
		case ClassPermanent:
			if res.ResultCode != plan.Code || res.Message == "" {
				t.Errorf("%v: code %q message %q, want %s with text", key, res.ResultCode, res.Message, plan.Code)
			}
		}
	}
	if counts[ClassOK] == 0 || counts[ClassNoData] == 0 || counts[ClassPermanent] == 0 {
		t.Errorf("class mix %v does not exercise every outcome; change the seed", counts)
	}
	st := srv.Stats()
	if st.Requests != n {
		t.Errorf("simulator saw %d requests for %d keys", st.Requests, n)
	}
	if st.PeakConcurrency > 4 {
		t.Errorf("peak concurrency %d exceeds max-conns 4", st.PeakConcurrency)
	}
}

func TestSimUnknownCAIsFatal(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{})
	cfg := simConfig(srv)
	cfg.CAFile = ""
	log := &attemptLog{}
	cfg.OnAttempt = log.add
	res := newTestClient(t, cfg).Query(t.Context(), testKey)
	if res.Class != ClassFatal || res.Attempts != 1 || len(log.all()) != 1 {
		t.Fatalf("%v after %d attempts (%d reported): %s", res.Class, res.Attempts, len(log.all()), res.Message)
	}
	if !isTLSVerifyError(res.Err) {
		t.Errorf("Err %v is not a certificate verification error", res.Err)
	}
	if n := srv.Stats().Requests; n != 0 {
		t.Errorf("simulator served %d requests; the handshake should have failed", n)
	}
}

func TestSimWrongSKIsFatal(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{})
	cfg := simConfig(srv)
	cfg.Credentials.SK = "not-the-sk"
	res := newTestClient(t, cfg).Query(t.Context(), testKey)
	if res.Class != ClassFatal || res.Attempts != 1 || res.HTTPStatus != 401 {
		t.Fatalf("%v after %d attempts (HTTP %d): %s", res.Class, res.Attempts, res.HTTPStatus, res.Message)
	}
	if st := srv.Stats(); st.Requests != 1 || st.ByOutcome[cmssim.OutcomeUnauthorized] != 1 {
		t.Errorf("simulator stats %+v, want exactly one unauthorized request", st)
	}
}

func TestSimSigningVariants(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{})
	for _, v := range []struct {
		headers []string
		layout  string
	}{{nil, ""}, {authv2.HeadersHostOnly, authv2.LayoutSeconds}, {authv2.HeadersHostOnly, authv2.LayoutMillis}, {authv2.HeadersDefault, authv2.LayoutSeconds}} {
		cfg := simConfig(srv)
		cfg.SignedHeaders, cfg.TimestampLayout = v.headers, v.layout
		if res := newTestClient(t, cfg).Query(t.Context(), testKey); res.Class != ClassOK {
			t.Errorf("%v/%q: %v %s", v.headers, v.layout, res.Class, res.Message)
		}
	}
}

func TestSimRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{RateLimit: 1, RateBurst: 1, RetryAfter: time.Second})
	log := &attemptLog{}
	cfg := simConfig(srv)
	cfg.OnAttempt = log.add
	c := newTestClient(t, cfg)
	if res := c.Query(t.Context(), simKey(1)); res.Class != ClassOK {
		t.Fatalf("first query: %v %s", res.Class, res.Message)
	}
	// The bucket is now empty: the next request gets 429 + Retry-After: 1.
	start := time.Now()
	res := c.Query(t.Context(), simKey(2))
	took := time.Since(start)
	if res.Class != ClassOK {
		t.Fatalf("second query: %v after %d attempts: %s", res.Class, res.Attempts, res.Message)
	}
	atts := log.all()[1:]
	if len(atts) < 2 || atts[0].HTTPStatus != 429 || atts[0].RetryAfter != time.Second {
		t.Fatalf("attempts %+v, want a 429 with Retry-After 1s first", atts)
	}
	// The backoff alone (<= 5ms) could not explain a wait this long.
	if took < time.Second {
		t.Errorf("retry came after %v, before Retry-After (1s)", took)
	}
	if st := srv.Stats(); st.ByOutcome[cmssim.OutcomeThrottled] != int64(len(atts)-1) {
		t.Errorf("throttled %d, want %d", st.ByOutcome[cmssim.OutcomeThrottled], len(atts)-1)
	}
}

func TestSimTransientFaultsRecover(t *testing.T) {
	t.Parallel()
	kinds := []string{cmssim.FaultServerError, cmssim.FaultHang, cmssim.FaultDrop, cmssim.FaultTruncated,
		cmssim.FaultGenericFailure, cmssim.FaultUnknownError}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := startSim(t, cmssim.Config{TransientShare: 1, TransientAttempts: 2, TransientKinds: []string{kind}, Seed: 1})
			cfg := simConfig(srv)
			cfg.RequestTimeout = 300 * time.Millisecond // the hang fault never answers
			log := &attemptLog{}
			cfg.OnAttempt = log.add
			res := newTestClient(t, cfg).Query(t.Context(), testKey)
			// The simulator fails this key's first TransientAttempts
			// attempts; count from its stats rather than assume the number.
			st := srv.Stats()
			if res.Class != ClassOK || res.Attempts < 3 || int64(res.Attempts) != st.Requests {
				t.Fatalf("%v after %d attempts (%d requests): %s", res.Class, res.Attempts, st.Requests, res.Message)
			}
			atts := log.all()
			for i, a := range atts[:len(atts)-1] {
				if a.Class != ClassTransient {
					t.Errorf("attempt %d: %+v, want transient", i+1, a)
				}
			}
			if ok := st.ByOutcome[cmssim.OutcomeOK]; ok != 1 || st.Requests-ok != int64(len(atts)-1) {
				t.Errorf("simulator outcomes %v for %d attempts", st.ByOutcome, len(atts))
			}
		})
	}
	t.Run("exhausted", func(t *testing.T) {
		t.Parallel()
		srv := startSim(t, cmssim.Config{TransientShare: 1, TransientAttempts: 10, TransientKinds: []string{cmssim.FaultServerError}})
		cfg := simConfig(srv)
		cfg.MaxAttempts = 3
		res := newTestClient(t, cfg).Query(t.Context(), testKey)
		if res.Class != ClassTransient || res.Attempts != 3 || res.Err == nil || srv.Stats().Requests != 3 {
			t.Errorf("%v after %d attempts (%d requests): %v", res.Class, res.Attempts, srv.Stats().Requests, res.Err)
		}
	})
}

func TestSimCancelDuringHang(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{TransientShare: 1, TransientAttempts: 10, TransientKinds: []string{cmssim.FaultHang}})
	cfg := simConfig(srv)
	cfg.RequestTimeout = time.Minute
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	res := c.Query(ctx, testKey)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Query took %v after cancellation", took)
	}
	if res.Class != ClassTransient || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("%v: %v, want transient wrapping context.Canceled", res.Class, res.Err)
	}
}

func TestSimPing(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{})
	p := newTestClient(t, simConfig(srv)).Ping(t.Context())
	if !p.OK() || p.Status != "UP" {
		t.Fatalf("ping: %s", p)
	}
	want := "cms ping " + srv.URL() + ": reachable yes, tls verified yes, signature accepted yes (HTTP 200, status UP)"
	if p.String() != want {
		t.Errorf("ping string\n %s\nwant\n %s", p, want)
	}

	cfg := simConfig(srv)
	cfg.Credentials.SK = "bad"
	p = newTestClient(t, cfg).Ping(t.Context())
	if p.OK() || !p.Reachable || !p.TLSVerified || p.SignatureAccepted || p.HTTPStatus != 401 {
		t.Errorf("ping with bad SK: %s", p)
	}
	if !strings.Contains(p.String(), "signature accepted no (HTTP 401)") {
		t.Errorf("ping string %q", p)
	}
}
