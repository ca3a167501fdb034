package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun starts the command over TLS, learns its URL from --addr-file,
// pings it with credentials from the environment and stops it by context.
func TestRun(t *testing.T) {
	t.Setenv("CMS_AK", "envAK")
	t.Setenv("CMS_SK", "envSK-secret")
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	certFile := filepath.Join(dir, "ca.pem")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--cert-file", certFile, "--addr-file", addrFile,
			"--seed", "9", "--transient-kinds", "hang, drop", "--track-call-ids"}, &logs)
	}()

	var base string
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil {
			base = strings.TrimSpace(string(b))
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no addr file: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("addr file holds %q", base)
	}

	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	ping := func(creds authv2.Credentials) int {
		body := []byte(`{"hello":"cmssim"}`)
		u, _ := url.Parse(base + cmssim.PathPing)
		auth, err := authv2.Sign(creds, time.Now().UTC().Format(authv2.LayoutMillis), "content-length;host",
			authv2.Request{Method: "POST", Path: u.Path, Body: body,
				Headers: map[string]string{"host": u.Host, "content-length": strconv.Itoa(len(body))}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, u.String(), bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && !strings.Contains(string(b), `"status":"UP"`) {
			t.Errorf("ping answered %s", b)
		}
		return resp.StatusCode
	}
	if got := ping(authv2.Credentials{AK: "envAK", SK: "envSK-secret"}); got != 200 {
		t.Errorf("ping with env credentials: %d", got)
	}
	if got := ping(authv2.Credentials{AK: "demoAK", SK: "demoSK"}); got != 401 {
		t.Errorf("ping with default credentials while env is set: %d, want 401", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
	out := logs.String()
	if strings.Contains(out, "envSK-secret") {
		t.Errorf("log leaks the SK:\n%s", out)
	}
	var ready map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "cmssim ready; stop with Ctrl-C" {
			ready = m
		}
	}
	if ready["url"] != base || ready["ca_file"] != certFile {
		t.Errorf("ready line %v, want url %s and ca_file %s", ready, base, certFile)
	}
	if !strings.Contains(out, `"ping":1`) {
		t.Errorf("final stats not logged:\n%s", out)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown kind", []string{"--transient-kinds", "explode"}, "TransientKinds"},
		{"cert without tls", []string{"--tls=false", "--cert-file", "x.pem"}, "--cert-file"},
		{"share", []string{"--no-data-share", "2"}, "NoDataShare"},
		{"log level", []string{"--log-level", "loud"}, "--log-level"},
		{"stray argument", []string{"extra"}, "unexpected"},
		{"unknown flag", []string{"--nope"}, "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			err := run(t.Context(), append([]string{"--addr", "127.0.0.1:0"}, tc.args...), &logs)
			if err == nil || errors.Is(err, context.Canceled) ||
				!strings.Contains(err.Error()+logs.String(), tc.want) {
				t.Errorf("err %v (log %q), want one mentioning %s", err, logs.String(), tc.want)
			}
		})
	}
}
