package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	_ "time/tzdata" // --tenant-zone works on machines without a zone database

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// callFlags are the flags of the call schedule (cmssim.CallsConfig) and of
// the generator that feeds it to a queue.
type callFlags struct {
	calls       cmssim.CallsConfig
	vdns        string
	ccID        int
	tenantZone  string
	generateCSV string
	enqueue     bool
	databaseURL string
	generateFor time.Duration
}

// register declares the flags; their defaults are cmssim.DefaultCalls().
func (f *callFlags) register(fs *flag.FlagSet) {
	d := cmssim.DefaultCalls()
	c := &f.calls
	fs.Float64Var(&c.CallsPerMinute, "calls-per-minute", 0,
		"mean calls starting per minute per VDN; > 0 turns on the call schedule (querybasiccallinfo only while a call is live, querycalls, querycalldetailbyid)")
	fs.StringVar(&f.vdns, "vdns", strconv.Itoa(d.VDNs[0].VDN), "scheduled VDNs: comma-separated VDN or CCID:VDN")
	fs.IntVar(&f.ccID, "cc-id", d.VDNs[0].CCID, "call center of --vdns entries without CCID:")
	fs.Float64Var(&c.InboundShare, "inbound-share", d.InboundShare, "share of inbound calls (0..1)")
	fs.Float64Var(&c.AbandonShare, "abandon-share", d.AbandonShare, "share of calls never answered (0..1)")
	fs.DurationVar(&c.MinDuration, "min-duration", d.MinDuration, "shortest call, start to end")
	fs.DurationVar(&c.MaxDuration, "max-duration", d.MaxDuration, "longest call, start to end")
	fs.DurationVar(&c.SettleDelay, "settle-delay", d.SettleDelay, "longest delay from a call's end to its storage (logDate)")
	fs.DurationVar(&c.Retention, "retention", 0, "how long after its start a finished call stays queryable (0 = the API's rule: from yesterday 00:00 UTC)")
	fs.StringVar(&f.tenantZone, "tenant-zone", "UTC", "time zone of the CDR's beginTime/endTime (IANA name)")
	fs.Float64Var(&c.ShortPageShare, "short-page-share", 0, "share of querycalls pages (of windows over one page) returning fewer rows than asked")
	fs.Float64Var(&c.CountDriftShare, "count-drift-share", 0, "share of querycalls pages (of windows over one page) reporting a count 1..3 too high")
	fs.Float64Var(&c.UnkeyedRowShare, "unkeyed-row-share", 0, "share of calls querycalls lists without a callId (empty or absent)")
	fs.Float64Var(&c.BothPassesShare, "both-passes-share", 0, "share of calls querycalls lists in both directions (internal, consultation); their CDR answers either")
	fs.Float64Var(&c.QueuedChatShare, "queued-chat-share", 0, "share of social-chat calls listed with a waitBegin --queued-chat-wait earlier than the time the listing filters on")
	fs.DurationVar(&c.QueuedChatWait, "queued-chat-wait", 4*24*time.Hour, "how much earlier a queued chat's listed waitBegin is")
	fs.StringVar(&c.CDRBodyShape, "cdr-body", d.CDRBodyShape, "querycalldetailbyid body accepted: flat, wrapped or both")
	fs.BoolVar(&c.CDRAgentIDSpace, "cdr-agent-id-space", false, `send the CDR's agentId as "agentId " (trailing space), as Huawei's sample does`)
	fs.StringVar(&f.generateCSV, "generate-csv", "", `write each call at its start as a CSV row "ccId,vdn,callId,isCallIn" to this file ("-" = stdout)`)
	fs.BoolVar(&f.enqueue, "enqueue", false, "insert each call at its start into cms.call_queue of --database-url")
	fs.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL for --enqueue (env DATABASE_URL)")
	fs.DurationVar(&f.generateFor, "generate-for", 0, "stop generating after this long (the server keeps running); 0 = until stopped")
}

// apply sets cfg.Calls from the parsed flags; getenv reads DATABASE_URL.
func (f *callFlags) apply(cfg *cmssim.Config, getenv func(string) string) error {
	generating := f.generateCSV != "" || f.enqueue
	if f.calls.CallsPerMinute == 0 {
		if generating {
			return errors.New("--generate-csv and --enqueue need --calls-per-minute")
		}
		return nil
	}
	vdns, err := parseVDNs(f.vdns, f.ccID)
	if err != nil {
		return fmt.Errorf("--vdns: %w", err)
	}
	f.calls.VDNs = vdns
	if f.calls.TenantZone, err = time.LoadLocation(f.tenantZone); err != nil {
		return fmt.Errorf("--tenant-zone: %w", err)
	}
	if f.enqueue && f.databaseURL == "" {
		f.databaseURL = getenv("DATABASE_URL")
		if f.databaseURL == "" {
			return errors.New("--enqueue needs --database-url (or DATABASE_URL)")
		}
	}
	if f.generateFor < 0 {
		return errors.New("--generate-for is negative")
	}
	calls := f.calls
	cfg.Calls = &calls
	return nil
}

// parseVDNs reads "25,26" or "1:25,2:7".
func parseVDNs(s string, ccID int) ([]cmssim.VDN, error) {
	var out []cmssim.VDN
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		cc, vdn := strconv.Itoa(ccID), item
		if a, b, ok := strings.Cut(item, ":"); ok {
			cc, vdn = a, b
		}
		c, err1 := strconv.Atoi(cc)
		v, err2 := strconv.Atoi(vdn)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not VDN or CCID:VDN", item)
		}
		out = append(out, cmssim.VDN{CCID: c, VDN: v})
	}
	if len(out) == 0 {
		return nil, errors.New("no VDN given")
	}
	return out, nil
}

// generation is a running generator (--generate-csv, --enqueue).
type generation struct {
	cancel   context.CancelFunc
	errc     chan error // the generator's failure, if any
	finished chan struct{}
}

// failed delivers the generator's failure; it never delivers for a nil
// generation or a generator that ends normally.
func (g *generation) failed() <-chan error {
	if g == nil {
		return nil
	}
	return g.errc
}

// stop ends the generator and waits for it; it returns a failure not yet
// taken from failed.
func (g *generation) stop() error {
	if g == nil {
		return nil
	}
	g.cancel()
	<-g.finished
	select {
	case err := <-g.errc:
		return err
	default:
		return nil
	}
}

// sink receives each generated call: a CSV stream, the queue, or both.
type sink struct {
	log                             zerolog.Logger
	csv                             *bufio.Writer
	csvClose                        func() error
	pool                            *pgxpool.Pool
	inserted, duplicates, dbFailure atomic.Int64
}

// enqueueTimeout bounds one INSERT, so a stalled database delays the
// stream by at most this much per call.
const enqueueTimeout = 5 * time.Second

// insertSQL is the producer contract of cms.call_queue (migrations/003).
const insertSQL = `INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`

func (k *sink) emit(ctx context.Context, c cmssim.Call) error {
	k.log.Debug().Str("call", c.Key().String()).Bool("inbound", c.Inbound).Time("start", c.WaitBegin).Msg("call started")
	if k.csv != nil {
		fmt.Fprintf(k.csv, "%d,%d,%s,%t\n", c.CCID, c.VDN, c.CallID, c.Inbound)
		if err := k.csv.Flush(); err != nil { // a reader on a pipe sees each call at its start
			return fmt.Errorf("--generate-csv: %w", err)
		}
	}
	if k.pool != nil {
		ictx, cancel := context.WithTimeout(ctx, enqueueTimeout)
		tag, err := k.pool.Exec(ictx, insertSQL, c.CCID, c.VDN, c.CallID)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// A producer outage loses these calls for the queue, as it would
			// a real event source's; counted and logged, the stream goes on.
			k.dbFailure.Add(1)
			k.log.Warn().Err(err).Str("call", c.Key().String()).Msg("enqueue failed")
		case tag.RowsAffected() == 0:
			k.duplicates.Add(1)
		default:
			k.inserted.Add(1)
		}
	}
	return nil
}

// openSink opens the CSV output and the database named by the flags.
func (f *callFlags) openSink(ctx context.Context, log zerolog.Logger) (*sink, error) {
	k := &sink{log: log}
	switch f.generateCSV {
	case "":
	case "-":
		k.csv, k.csvClose = bufio.NewWriter(os.Stdout), func() error { return nil }
	default:
		file, err := os.Create(f.generateCSV)
		if err != nil {
			return nil, fmt.Errorf("--generate-csv: %w", err)
		}
		k.csv, k.csvClose = bufio.NewWriter(file), file.Close
	}
	if k.csv != nil {
		io.WriteString(k.csv, "ccId,vdn,callId,isCallIn\n")
		if err := k.csv.Flush(); err != nil {
			k.csvClose()
			return nil, fmt.Errorf("--generate-csv: %w", err)
		}
	}
	if f.enqueue {
		// pgx redacts the password from its own errors; the URL itself is
		// never logged.
		pool, err := pgxpool.New(ctx, f.databaseURL)
		if err == nil {
			_, err = pool.Exec(ctx, `SELECT FROM cms.call_queue LIMIT 0`)
			if err != nil {
				pool.Close()
				err = fmt.Errorf("cms.call_queue is not usable (run etl migrate first?): %w", err)
			}
		}
		if err != nil {
			k.close()
			return nil, fmt.Errorf("--enqueue: %w", err)
		}
		k.pool = pool
	}
	return k, nil
}

func (k *sink) close() error {
	if k.pool != nil {
		k.pool.Close()
	}
	if k.csvClose != nil {
		return k.csvClose()
	}
	return nil
}

// startGenerator starts the generator when --generate-csv or --enqueue
// asks for it; nil otherwise.
func (f *callFlags) startGenerator(ctx context.Context, srv *cmssim.Server, log zerolog.Logger) (*generation, error) {
	if f.generateCSV == "" && !f.enqueue {
		return nil, nil
	}
	k, err := f.openSink(ctx, log)
	if err != nil {
		return nil, err
	}
	gcfg := cmssim.GeneratorConfig{Schedule: srv.Schedule(), From: srv.Schedule().Now()}
	if f.generateFor > 0 {
		gcfg.Until = gcfg.From.Add(f.generateFor)
	}
	gen, err := cmssim.NewGenerator(gcfg)
	if err != nil {
		k.close()
		return nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	g := &generation{cancel: cancel, errc: make(chan error, 1), finished: make(chan struct{})}
	go func() {
		defer close(g.finished)
		st, err := gen.Run(gctx, k.emit)
		err = errors.Join(err, k.close())
		ev := log.Info()
		if err != nil {
			ev = log.Error().Err(err)
		}
		ev.Int64("generated", st.Emitted).Dur("max_lag", st.MaxLag).Bool("enqueue", f.enqueue).
			Int64("enqueued", k.inserted.Load()).Int64("duplicates", k.duplicates.Load()).
			Int64("enqueue_failed", k.dbFailure.Load()).Msg("cmssim generator stopped")
		if err != nil {
			g.errc <- err
		}
	}()
	log.Info().Float64("calls_per_minute", f.calls.CallsPerMinute).Int("vdns", len(f.calls.VDNs)).
		Str("csv", f.generateCSV).Bool("enqueue", f.enqueue).Dur("for", f.generateFor).Msg("cmssim generator started")
	return g, nil
}
