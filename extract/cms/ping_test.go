package cms

import (
	"strings"
	"testing"

	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// An http:// URL pointing at a TLS server gets "expects HTTPS", not
// "signature accepted no (HTTP 400)": the signature was never checked.
func TestPingHTTPAgainstTLSSaysUseHTTPS(t *testing.T) {
	t.Parallel()
	srv := startSim(t, cmssim.Config{})
	cfg := simConfig(srv)
	plain := "http://" + strings.TrimPrefix(srv.URL(), "https://")
	cfg.BaseURL, cfg.CAFile = plain, ""
	p := newTestClient(t, cfg).Ping(t.Context())
	if p.OK() || !p.ExpectsHTTPS || !p.Reachable || p.SignatureAccepted {
		t.Fatalf("ping = %+v", p)
	}
	want := "cms ping " + plain + ": reachable yes, but the server expects HTTPS: use --api-url " + srv.URL()
	if p.String() != want {
		t.Errorf("ping string\n %s\nwant\n %s", p, want)
	}
	if strings.Contains(p.String(), "signature") {
		t.Errorf("the signature was never checked, yet the line mentions it: %s", p)
	}

	// A plain-HTTP server that rejects the signature is not mistaken for one.
	plainSim, err := cmssim.Start(t.Context(), cmssim.Config{Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plainSim.Close() })
	cfg = simConfig(plainSim)
	cfg.CAFile, cfg.Credentials.SK = "", "wrong"
	p = newTestClient(t, cfg).Ping(t.Context())
	if p.ExpectsHTTPS || p.HTTPStatus != 401 || !strings.Contains(p.String(), "signature accepted no (HTTP 401)") {
		t.Errorf("plain HTTP server with a bad SK: %+v: %s", p, p)
	}
}
