// Command cmssim runs the CC-CMS simulator (package cmssim) until SIGINT or
// SIGTERM, for local development, demos and benchmarks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/internal/cmssim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cmssim:", err)
		os.Exit(1)
	}
}

// run parses args, starts the simulator and blocks until ctx ends.
func run(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("cmssim", flag.ContinueOnError)
	fs.SetOutput(logOut)
	var (
		cfg       cmssim.Config
		kinds     string
		addrFile  string
		logLevel  string
		allKinds  = strings.Join(cmssim.AllFaultKinds, ",")
		startedAt = time.Now()
		calls     callFlags // calls.go: the call schedule and its generator
	)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:28443", "listen address (port 0 picks a free one)")
	fs.BoolVar(&cfg.TLS, "tls", true, "serve HTTPS with a generated self-signed certificate")
	fs.StringVar(&cfg.CertFile, "cert-file", "", "write the certificate PEM (the CA to trust) here; default a temp file removed on exit")
	fs.StringVar(&cfg.Credentials.AK, "ak", envOr("CMS_AK", "demoAK"), "access key to accept (env CMS_AK)")
	// The default is filled in after parsing so -h never prints an SK taken from the environment.
	fs.StringVar(&cfg.Credentials.SK, "sk", "", `secret key to accept (default: env CMS_SK, else "demoSK"; prefer the env over the flag)`)
	fs.DurationVar(&cfg.Latency, "latency", 0, "latency added to every authenticated request")
	fs.DurationVar(&cfg.LatencyJitter, "latency-jitter", 0, "uniform random extra latency in [0, jitter)")
	fs.Float64Var(&cfg.NoDataShare, "no-data-share", 0, "share of call keys answering no data (0..1)")
	fs.Float64Var(&cfg.PermanentShare, "permanent-share", 0, "share of call keys failing permanently (0..1)")
	fs.Float64Var(&cfg.TransientShare, "transient-share", 0, "share of call keys with transient faults (0..1)")
	fs.IntVar(&cfg.TransientAttempts, "transient-attempts", 1, "failing attempts before a faulty key succeeds")
	fs.StringVar(&kinds, "transient-kinds", allKinds, "comma-separated fault kinds: "+allKinds)
	fs.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests/s served before answering 429 (0 = unlimited)")
	fs.IntVar(&cfg.RateBurst, "rate-burst", 0, "rate-limit burst (0 = ceil(rate-limit))")
	fs.DurationVar(&cfg.RetryAfter, "retry-after", time.Second, "Retry-After sent with 429 (whole seconds, min 1s)")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of the generated data and of which keys fail")
	fs.BoolVar(&cfg.TrackCallIDs, "track-call-ids", false, "count requests per call key (see GET /_sim/stats)")
	fs.DurationVar(&cfg.HangMax, "hang-max", 2*time.Minute, "longest a hang fault lasts before a 504")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 64<<10, "largest request body accepted")
	fs.StringVar(&addrFile, "addr-file", "", "write the base URL to this file once listening")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	calls.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.Credentials.SK == "" {
		cfg.Credentials.SK = envOr("CMS_SK", "demoSK")
	}
	level, err := zerolog.ParseLevel(logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = zerolog.New(logOut).Level(level).With().Timestamp().Logger()
	for k := range strings.SplitSeq(kinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			cfg.TransientKinds = append(cfg.TransientKinds, k)
		}
	}
	if !cfg.TLS && cfg.CertFile != "" {
		return errors.New("--cert-file needs --tls")
	}
	if err := calls.apply(&cfg, os.Getenv); err != nil {
		return err
	}

	srv, err := cmssim.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if addrFile != "" {
		if err := writeAtomic(addrFile, srv.URL()+"\n"); err != nil {
			return fmt.Errorf("--addr-file: %w", err)
		}
	}
	gen, err := calls.startGenerator(ctx, srv, cfg.Logger)
	if err != nil {
		return err
	}
	cfg.Logger.Info().Str("url", srv.URL()).Str("ca_file", srv.CAFile()).
		Str("credentials", cfg.Credentials.String()).Dur("startup", time.Since(startedAt)).
		Msg("cmssim ready; stop with Ctrl-C")
	var genErr error
	select {
	case <-ctx.Done():
	case genErr = <-gen.failed():
	}
	genErr = errors.Join(genErr, gen.stop())
	st := srv.Stats()
	cfg.Logger.Info().Int64("requests", st.Requests).Interface("by_outcome", st.ByOutcome).
		Int64("peak_per_second", st.PeakPerSecond).Int64("peak_concurrency", st.PeakConcurrency).
		Interface("by_endpoint", st.ByEndpoint).Msg("cmssim stopped")
	return errors.Join(genErr, srv.Close())
}

// envOr returns the environment variable name, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// writeAtomic writes via a temp file and rename, so a script polling for the
// file never reads it half-written.
func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cmssim-addr-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write temp file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("close temp file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rename temp file: %w", err)
	}
	return nil
}
