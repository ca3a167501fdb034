package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest/cluster"
	"github.com/cmsetl/cms-etl/migrations"
)

// demoFollow holds the flags of etl demo --follow.
type demoFollow struct {
	follow         bool
	duration       time.Duration
	listen         string
	callsPerMinute float64
	trackEvery     time.Duration
	databaseURL    string
}

// registerDemoFollow declares etl demo's flags for the live demo.
func registerDemoFollow(fs *flagSet) *demoFollow {
	d := &demoFollow{}
	fs.in(groupInput)
	fs.BoolVar(&d.follow, "follow", false, "the live demo: a throwaway PostgreSQL, the simulator generating calls into cms.call_queue, and a follower enriching and tracking them")
	fs.Float64Var(&d.callsPerMinute, "calls-per-minute", 60, "with --follow: calls the simulator starts per minute (on each of 2 VDNs)")
	fs.DurationVar(&d.trackEvery, "track-every", 5*time.Second, "with --follow: the follower's --track-every")
	fs.DurationVar(&d.duration, "for", 0, "with --follow: stop after this long (0 = until Ctrl-C)")
	fs.in(groupPostgres)
	fs.StringVar(&d.databaseURL, "database-url", "", "with --follow: use (and migrate) this database instead of a throwaway server (env DATABASE_URL is not read: the demo fills the database it uses)")
	fs.in(groupLogging)
	fs.StringVar(&d.listen, "listen", "127.0.0.1:9464", "with --follow: the follower's /metrics and /healthz")
	return d
}

// errNoPostgres explains what the live demo needs.
var errNoPostgres = errors.New("the live demo needs PostgreSQL: the server binaries (initdb and pg_ctl, not found on PATH or under /usr/lib/postgresql) to start a throwaway server, or --database-url of a database it may migrate and fill")

// runDemoFollow runs the live demo until ctx ends or d.duration passes:
// PostgreSQL (throwaway, or d.databaseURL), migrated; the simulator with a
// call schedule over TLS, its generator inserting each call into
// cms.call_queue at its start (the producer contract); and `etl run --input
// queue --follow --output postgres --track-every`, serving /metrics and
// /healthz. It prints what to look at while it runs.
func runDemoFollow(ctx context.Context, env Env, rep reporter, demo Config, d *demoFollow, log zerolog.Logger) int {
	if d.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.duration)
		defer cancel()
	}
	url, stopDB, err := demoDatabase(ctx, d.databaseURL, log)
	if err != nil {
		return rep.exit(err)
	}
	defer stopDB()

	creds := authv2.Credentials{AK: "demoAK", SK: "demoSK"}
	certDir, err := os.MkdirTemp("", "cmssim-demo")
	if err != nil {
		return rep.exit(err)
	}
	defer os.RemoveAll(certDir)
	calls := cmssim.DefaultCalls()
	calls.VDNs = []cmssim.VDN{{CCID: 1, VDN: 25}, {CCID: 1, VDN: 26}}
	calls.CallsPerMinute = d.callsPerMinute
	sim, err := cmssim.Start(ctx, cmssim.Config{TLS: true, CertFile: filepath.Join(certDir, "ca.pem"), Credentials: creds,
		Latency: 15 * time.Millisecond, LatencyJitter: 10 * time.Millisecond, Seed: 1, Calls: &calls, Logger: log.Level(zerolog.WarnLevel)})
	if err != nil {
		return rep.exit(fmt.Errorf("start simulator: %w", err))
	}
	defer sim.Close()

	producer, err := pgxpool.New(ctx, url)
	if err != nil {
		return rep.exit(fmt.Errorf("connect the demo's producer: %w", err))
	}
	defer producer.Close()
	gen, err := cmssim.NewGenerator(cmssim.GeneratorConfig{Schedule: sim.Schedule()})
	if err != nil {
		return rep.exit(err)
	}
	genDone := make(chan cmssim.GeneratorStats, 1)
	go func() {
		st, err := gen.Run(ctx, func(ctx context.Context, c cmssim.Call) error {
			// The producer contract of cms.call_queue, at the call's start.
			_, err := producer.Exec(ctx, `INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				c.CCID, c.VDN, c.CallID)
			if err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("demo producer: enqueue failed")
			}
			return nil
		})
		if err != nil {
			log.Warn().Err(err).Msg("demo producer stopped")
		}
		genDone <- st
	}()

	fmt.Fprintf(env.Stdout, `The live demo is running: the simulator starts about %s calls a minute (20-120 s long) and inserts
each into cms.call_queue as it starts; a follower (etl run --input queue --follow --track-every %s)
asks about each call while it is live and follows it to its end. Stop it with Ctrl-C (the follower
stops as under systemd: exit 0, nothing lost).

  metrics:   curl -s http://%s/metrics | grep '^cms_etl_'
  health:    curl -si http://%s/healthz
  the data:  psql '%s' -c 'SELECT call_id, seen_at, device_type_label, device_no, wait_seconds, talk_seconds FROM cms.call_snapshot ORDER BY call_id, seen_at'

`, strconv.FormatFloat(2*d.callsPerMinute, 'f', -1, 64), d.trackEvery, d.listen, d.listen, url)

	c := Config{}
	c.registerRun(newFlagSet("run", ""))
	c.Input, c.Outputs, c.DatabaseURL = "queue", []string{"postgres"}, url
	c.APIURL, c.AK, c.sk, c.CAFile = sim.URL(), creds.AK, creds.SK, sim.CAFile()
	c.Follow, c.TrackEvery, c.Listen = true, d.trackEvery, d.listen
	c.Rate, c.RequestTimeout, c.Grace = demo.Rate, 5*time.Second, 5*time.Second
	c.LogFormat, c.LogLevel, c.MetricsFile = demo.LogFormat, demo.LogLevel, demo.MetricsFile
	c.Progress, c.Summary = demo.Progress, demo.Summary
	c.set = map[string]bool{"follow": true, "track-every": true}
	if err := c.validateRun(); err != nil {
		return rep.exit(err)
	}
	code, sum := runJob(ctx, &c, env, rep)
	st := <-genDone
	if sum == nil {
		return code
	}
	// What the demo did, from the database.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var enriched, tracked, snapshots int64
	err = producer.QueryRow(rctx, `SELECT (SELECT count(*) FROM cms.call_info), (SELECT count(*) FROM cms.call_info WHERE snapshots > 1),
		(SELECT count(*) FROM cms.call_snapshot)`).Scan(&enriched, &tracked, &snapshots)
	if err != nil {
		return rep.exit(failed(fmt.Errorf("read the demo's results: %w", err)))
	}
	fmt.Fprintf(env.Stdout, "\nThe live demo generated %d calls; %d were enriched while live, %d of them answered more than once (tracked), with %d changes of device or state in cms.call_snapshot.\n",
		st.Emitted, enriched, tracked, snapshots)
	if code != ExitOK {
		return code
	}
	return ExitOK
}

// demoDatabase is the live demo's database: url when given (migrated), else
// a new database on a throwaway server, removed by stop.
func demoDatabase(ctx context.Context, url string, log zerolog.Logger) (string, func(), error) {
	stop := func() {}
	if url == "" {
		srv, err := cluster.Start(ctx)
		if errors.Is(err, cluster.ErrNoServer) {
			return "", stop, withHint(errNoPostgres, "install the PostgreSQL server (`apt-get install postgresql`), or pass --database-url")
		}
		if err != nil {
			return "", stop, fmt.Errorf("start a throwaway PostgreSQL: %w", err)
		}
		stop = func() {
			if err := srv.Stop(); err != nil {
				log.Warn().Err(err).Msg("stop the demo's PostgreSQL")
			}
		}
		if url, err = srv.CreateDatabase(ctx, "cms_demo"); err != nil {
			stop()
			return "", func() {}, err
		}
		log.Info().Str("server_log", srv.LogFile()).Msg("throwaway PostgreSQL started (removed when the demo ends)")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		stop()
		return "", func() {}, fmt.Errorf("connect to the demo's database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := migrations.Apply(ctx, conn); err != nil {
		stop()
		return "", func() {}, fmt.Errorf("migrate the demo's database: %w", err)
	}
	return url, stop, nil
}
