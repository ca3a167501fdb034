// Package discover lists the finished calls of VDNs through CC-CMS querycalls
// (v2), checking itself: the window is cut into slices, each slice is paged
// (limit 100, offset) in each direction, and a slice's answer is accepted
// only when its unique call IDs equal the count the API reported and the
// count stayed the same on every page. Otherwise the slice is cut in half
// and each half asked again, down to a minimum; a slice that still does not
// add up is reported as failed, never silently short.
//
// The API keeps calls for one day and accepts windows from yesterday 00:00
// to today 23:59:59 (cms-discovery.md 1.3): Validate refuses other windows
// before any request. Only closed slices are asked (ending at least
// SettleLag before now), so a slice's count is stable.
package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
)

// Lister asks querycalls for one page, through the rate limiter and with
// its retries: *cms.Client. A fatal answer (401, 403, TLS) stops the whole
// discovery; other failures fail their slice.
type Lister interface {
	List(ctx context.Context, req cms.ListRequest) cms.ListResult
}

// ErrStop wraps the error of a discovery stopped by a fatal answer.
var ErrStop = errors.New("discovery stopped")

// StopError is the fatal answer that stopped a discovery; it is ErrStop.
// The Lister decides what is fatal: the API refusing the caller (401, 403,
// TLS), or the caller's own reasons (a streak of failed pages, its rate
// group lost); HTTPStatus and Err tell them apart.
type StopError struct {
	Message    string
	HTTPStatus int   // of the answer; 0 without one
	Err        error // the answer's cause (cms.ListResult.Err), may be nil
}

func (e *StopError) Error() string        { return ErrStop.Error() + ": " + e.Message }
func (e *StopError) Is(target error) bool { return target == ErrStop }
func (e *StopError) Unwrap() error        { return e.Err }

// PageLimit is the most rows querycalls returns per page.
const PageLimit = 100

// Defaults of Config.
const (
	DefaultSlice       = time.Hour
	DefaultMinSlice    = time.Minute
	DefaultSettleLag   = 15 * time.Minute
	DefaultConcurrency = 4
	DefaultRetries     = 2
)

// Config says what to discover. Errors from Validate name the flag.
type Config struct {
	CCID int   // --cc-id, 1..65535
	VDNs []int // --vdn, each 1..5000
	// From and To bound the window, [From, To).
	From, To time.Time
	// Inbound and Outbound select the passes (--direction).
	Inbound, Outbound bool
	// Slice is the length of the slices the window is cut into (--slice).
	// Default 60m.
	Slice time.Duration
	// MinSlice is the shortest a slice is bisected to. Default 1m.
	MinSlice time.Duration
	// SettleLag: only slices ending at least this long before now are
	// asked; 0 asks every slice that has ended. etl discover's --settle-lag
	// defaults to DefaultSettleLag; here zero means zero, so that an
	// explicit --settle-lag 0 is not turned into the default.
	SettleLag time.Duration
	// Concurrency is how many slices are paged at once. Default 4.
	Concurrency int
	// Retries is how often a slice that still does not add up at MinSlice
	// is asked again before it is reported failed. Default 2.
	Retries int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Slice == 0 {
		c.Slice = DefaultSlice
	}
	if c.MinSlice == 0 {
		c.MinSlice = DefaultMinSlice
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// AllowedWindow is the window querycalls accepts at now: from yesterday
// 00:00:00 to today 23:59:59.999, in UTC (the v1 page's reading; whether the
// server counts days in another zone is an open question, see the README).
func AllowedWindow(now time.Time) (from, to time.Time) {
	y, m, d := now.UTC().Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return today.AddDate(0, 0, -1), today.AddDate(0, 0, 1)
}

// Validate checks the configuration at now, before any request.
func (c Config) Validate(now time.Time) error {
	c = c.withDefaults()
	switch {
	case c.CCID < 1 || c.CCID > extract.MaxCCID:
		return fmt.Errorf("--cc-id %d: must be 1..%d", c.CCID, extract.MaxCCID)
	case len(c.VDNs) == 0:
		return errors.New("--vdn: at least one VDN is required")
	case !c.Inbound && !c.Outbound:
		return errors.New("--direction: choose in, out or both")
	case !c.To.After(c.From):
		return fmt.Errorf("--to %s must be after --from %s", c.To.Format(time.RFC3339), c.From.Format(time.RFC3339))
	case c.Slice < c.MinSlice || c.MinSlice < time.Second:
		return fmt.Errorf("--slice %s: must be at least %s", c.Slice, max(c.MinSlice, time.Second))
	case c.SettleLag < 0:
		return fmt.Errorf("--settle-lag %s: must not be negative", c.SettleLag)
	case c.Concurrency < 1 || c.Concurrency > 64:
		return fmt.Errorf("concurrency %d: want 1..64", c.Concurrency)
	}
	seen := map[int]bool{}
	for _, v := range c.VDNs {
		if v < 1 || v > extract.MaxVDN {
			return fmt.Errorf("--vdn %d: must be 1..%d", v, extract.MaxVDN)
		}
		if seen[v] {
			return fmt.Errorf("--vdn %d: given twice", v)
		}
		seen[v] = true
	}
	lo, hi := AllowedWindow(now)
	if c.From.Before(lo) || c.To.After(hi) {
		return fmt.Errorf("window %s .. %s is outside what CC-CMS keeps: querycalls holds finished calls for one day "+
			"and accepts windows from yesterday 00:00 to today 23:59:59 UTC (%s .. %s); a night that was missed cannot be recovered from it",
			c.From.UTC().Format(time.RFC3339), c.To.UTC().Format(time.RFC3339), lo.Format(time.RFC3339), hi.Format(time.RFC3339))
	}
	return nil
}

// Call is one discovered call.
type Call struct {
	Key extract.Key
	// Inbound is the direction kept: that of the pass that listed the
	// call, inbound when both did.
	Inbound bool
	// BothDirections: the inbound and the outbound pass of the same time
	// slice both listed the call (internal or consultation calls,
	// cms-discovery.md 6.2). It is kept once, as inbound, with this flag.
	BothDirections bool
	Record         *cms.ListedCall
	Raw            json.RawMessage
	FetchedAt      time.Time
}

// Slice is what Run hands to emit: one time slice of one VDN with both
// directions' passes done, its calls not kept before, the inbound pass's
// first, each pass's in the order listed.
type Slice struct {
	VDN        int
	Begin, End time.Time // [Begin, End)
	Calls      []Call
	// Covered is how much of [Begin, End) the passes accepted, added over
	// the directions: twice End-Begin with both passes whole, less when
	// part of a pass failed.
	Covered time.Duration
}

// Tally reconciles one VDN and direction: the counts the API reported in
// the accepted slices are the calls kept, the rows rejected, and the calls
// dropped as listed before (BothDirections, SamePass).
type Tally struct {
	VDN        int   `json:"vdn"`
	Inbound    bool  `json:"inbound"`
	Slices     int   `json:"slices"`      // slices accepted (after bisection)
	Open       int   `json:"slices_open"` // slices not asked: not closed yet
	Failed     int   `json:"slices_failed"`
	Pages      int   `json:"pages"`
	Reported   int64 `json:"count_reported"` // sum of the accepted slices' counts
	Kept       int64 `json:"rows_kept"`      // unique calls kept
	Bisections int   `json:"bisections"`
	Rejected   int64 `json:"rows_rejected"` // rows that are no valid key (no callId, undecodable, not a key)
	// BothDirections counts this pass's listings of calls the other
	// direction's pass listed too: dropped here, kept once by the other
	// pass (the inbound one when both listed it in the same slice).
	BothDirections int64 `json:"both_directions"`
	// SamePass counts this pass's listings of calls it had already listed
	// in another slice (a call on a slice boundary): dropped, kept once.
	SamePass int64 `json:"duplicates_same_pass"`
}

// Result of a discovery.
type Result struct {
	Tallies []Tally // by VDN, then inbound first
	// Failures describe slices that did not add up or whose requests
	// failed, and rejected rows.
	Failures []string
}

// Failed reports whether any slice failed.
func (r Result) Failed() bool { return len(r.Failures) > 0 }

// Run discovers the calls of cfg's window and hands each time slice of each
// VDN to emit once both directions' passes of it are done, one at a time
// and in a fixed order (VDN, then time), whatever order the concurrent
// passes finish in: which pass keeps a call listed twice does not depend on
// timing. emit need not be safe for concurrent use. Run returns when every
// slice is done, emit fails, ctx ends or the Lister says stop.
func Run(ctx context.Context, cfg Config, l Lister, emit func(context.Context, Slice) error) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(cfg.Now()); err != nil {
		return Result{}, err
	}
	d := &run{cfg: cfg, l: l, tallies: map[tallyKey]*Tally{}, seen: map[extract.Key]uint8{}}
	var dirs []bool // inbound first: it wins a call both passes list
	if cfg.Inbound {
		dirs = append(dirs, true)
	}
	if cfg.Outbound {
		dirs = append(dirs, false)
	}
	closedBy := cfg.Now().Add(-cfg.SettleLag)
	type unit struct {
		vdn        int
		begin, end time.Time
	}
	var units []unit
	for _, vdn := range cfg.VDNs {
		for _, in := range dirs {
			d.tally(vdn, in)
		}
		for b := cfg.From; b.Before(cfg.To); b = b.Add(cfg.Slice) {
			e := b.Add(cfg.Slice)
			if e.After(cfg.To) {
				e = cfg.To
			}
			if e.After(closedBy) {
				for _, in := range dirs {
					d.count(vdn, in, func(t *Tally) { t.Open++ })
				}
				continue
			}
			units = append(units, unit{vdn, b, e})
		}
	}

	// Units run concurrently and emit in order: each waits for the one
	// before it. They start in order, at most Concurrency at once, so the
	// first unfinished one always runs, and at most Concurrency slices'
	// calls are held.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	prev := make(chan struct{})
	close(prev)
	for _, u := range units {
		turn, done := prev, make(chan struct{})
		prev = done
		g.Go(func() error {
			defer close(done)
			passes := make(map[bool][]pass, len(dirs))
			for _, in := range dirs {
				err := d.slice(gctx, u.vdn, in, u.begin, u.end, 0, func(p pass) { passes[in] = append(passes[in], p) })
				if err != nil {
					return err
				}
			}
			select {
			case <-turn:
			case <-gctx.Done():
			}
			if err := gctx.Err(); err != nil {
				return err
			}
			return emit(gctx, d.merge(u.vdn, u.begin, u.end, dirs, passes))
		})
	}
	err := g.Wait()
	return d.result(), err
}

type tallyKey struct {
	vdn     int
	inbound bool
}

type run struct {
	cfg Config
	l   Lister

	mu       sync.Mutex
	tallies  map[tallyKey]*Tally
	failures []string
	seen     map[extract.Key]uint8 // keys listed so far: the passes that listed them (listedBy)
}

func (d *run) tally(vdn int, inbound bool) *Tally {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := tallyKey{vdn, inbound}
	if d.tallies[k] == nil {
		d.tallies[k] = &Tally{VDN: vdn, Inbound: inbound}
	}
	return d.tallies[k]
}

func (d *run) count(vdn int, inbound bool, f func(*Tally)) {
	t := d.tally(vdn, inbound)
	d.mu.Lock()
	defer d.mu.Unlock()
	f(t)
}

func (d *run) fail(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failures = append(d.failures, msg)
}

// pass is an accepted part of one direction's pass over a time slice: the
// slice itself, or a part bisection cut.
type pass struct {
	begin, end time.Time
	calls      []Call
}

// merge makes one time slice's Slice from its accepted passes, in the
// order of dirs (inbound first), keeping each call once: a call the other
// pass listed too is kept by the pass that listed it first (in the same
// slice the inbound one), and flagged BothDirections when both listings are
// of this slice; a call this pass listed before (another slice) is a
// same-pass duplicate. It counts what it keeps and drops. Slices are merged
// in Run's fixed order, so the outcome does not depend on timing.
func (d *run) merge(vdn int, begin, end time.Time, dirs []bool, passes map[bool][]pass) Slice {
	s := Slice{VDN: vdn, Begin: begin, End: end}
	here := map[extract.Key]int{} // calls kept by this slice: index in s.Calls
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, in := range dirs {
		t := d.tallies[tallyKey{vdn, in}]
		bit := listedBy(in)
		for _, p := range passes[in] {
			s.Covered += p.end.Sub(p.begin)
			for _, c := range p.calls {
				prior := d.seen[c.Key]
				switch {
				case prior&bit != 0:
					t.SamePass++
					continue
				case prior != 0:
					// The other pass listed it: kept there.
					d.seen[c.Key] = prior | bit
					t.BothDirections++
					if i, ok := here[c.Key]; ok {
						s.Calls[i].BothDirections = true
					}
					continue
				}
				d.seen[c.Key] = bit
				here[c.Key] = len(s.Calls)
				s.Calls = append(s.Calls, c)
				t.Kept++
			}
		}
	}
	return s
}

// listedBy is a pass's bit in run.seen.
func listedBy(inbound bool) uint8 {
	if inbound {
		return 1
	}
	return 2
}

func (d *run) result() Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	var r Result
	for _, t := range d.tallies {
		r.Tallies = append(r.Tallies, *t)
	}
	sort.Slice(r.Tallies, func(i, j int) bool {
		a, b := r.Tallies[i], r.Tallies[j]
		if a.VDN != b.VDN {
			return a.VDN < b.VDN
		}
		return a.Inbound && !b.Inbound
	})
	r.Failures = append(r.Failures, d.failures...)
	sort.Strings(r.Failures)
	return r
}

// errInconsistent marks a slice whose pages did not add up.
var errInconsistent = errors.New("pages do not add up")

// slice pages [begin, end) in one direction and accepts it, or bisects it
// when it does not add up; at MinSlice it retries, then records a failure.
func (d *run) slice(ctx context.Context, vdn int, inbound bool, begin, end time.Time, tries int, accept func(pass)) error {
	calls, rejected, count, pages, err := d.page(ctx, vdn, inbound, begin, end)
	d.count(vdn, inbound, func(t *Tally) { t.Pages += pages })
	switch {
	case err == nil:
		d.count(vdn, inbound, func(t *Tally) { t.Slices++; t.Reported += count; t.Rejected += int64(len(rejected)) })
		for _, r := range rejected {
			d.fail(describe(vdn, inbound, begin, end) + ": " + r)
		}
		accept(pass{begin: begin, end: end, calls: calls})
		return nil
	case errors.Is(err, ErrStop) || ctx.Err() != nil:
		return err
	case !errors.Is(err, errInconsistent):
		// The request failed after its retries: the slice is not known.
		d.count(vdn, inbound, func(t *Tally) { t.Failed++ })
		d.fail(describe(vdn, inbound, begin, end) + ": " + err.Error())
		return nil
	}
	if half := end.Sub(begin) / 2; half >= d.cfg.MinSlice {
		d.count(vdn, inbound, func(t *Tally) { t.Bisections++ })
		mid := begin.Add(half).Truncate(time.Millisecond)
		if err := d.slice(ctx, vdn, inbound, begin, mid, 0, accept); err != nil {
			return err
		}
		return d.slice(ctx, vdn, inbound, mid, end, 0, accept)
	}
	if tries < d.cfg.Retries {
		return d.slice(ctx, vdn, inbound, begin, end, tries+1, accept)
	}
	d.count(vdn, inbound, func(t *Tally) { t.Failed++ })
	d.fail(describe(vdn, inbound, begin, end) + ": " + err.Error())
	return nil
}

// rowPlace stands for a row without a call ID among a slice's unique call
// IDs: its offset, in a form no call ID takes.
func rowPlace(offset int) string { return "\x00row " + strconv.Itoa(offset) }

// maxRawShown bounds the raw row a rejection quotes.
const maxRawShown = 512

// rejectRow describes a rejected row: its offset in the slice's listing,
// why, and the row as listed (compacted, cut at maxRawShown bytes).
// describe() adds the VDN, direction and window.
func rejectRow(offset int, reason string, raw json.RawMessage) string {
	var b bytes.Buffer
	shown := strconv.Quote(string(raw)) // not JSON: quoted, so it stays one line
	if json.Compact(&b, raw) == nil {
		shown = b.String()
	}
	if len(shown) > maxRawShown {
		shown = fmt.Sprintf("%s... (%d bytes)", strings.ToValidUTF8(shown[:maxRawShown], ""), len(shown))
	}
	return fmt.Sprintf("row at offset %d rejected: %s; listed as %s", offset, reason, shown)
}

func describe(vdn int, inbound bool, begin, end time.Time) string {
	dir := "outbound"
	if inbound {
		dir = "inbound"
	}
	return fmt.Sprintf("vdn %d %s %s..%s", vdn, dir, begin.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
}

// page asks every page of one slice. The window's bounds are inclusive on
// the API, so a slice asks [begin, end-1ms] and slices never overlap.
func (d *run) page(ctx context.Context, vdn int, inbound bool, begin, end time.Time) (calls []Call, rejected []string, count int64, pages int, err error) {
	q := cms.ListRequest{CCID: d.cfg.CCID, VDN: vdn, Inbound: inbound, Begin: begin, End: end.Add(-time.Millisecond), Limit: PageLimit}
	ids := map[string]bool{}
	count = -1
	for {
		a := d.l.List(ctx, q)
		pages++
		switch a.Class {
		case cms.ClassOK:
		case cms.ClassFatal:
			return nil, nil, 0, pages, &StopError{Message: a.Message, HTTPStatus: a.HTTPStatus, Err: a.Err}
		default:
			// describe() adds the VDN, direction and window.
			return nil, nil, 0, pages, fmt.Errorf("page at offset %d: %s", q.Offset, a.Message)
		}
		l := a.Listing
		switch {
		case !l.HasCount && len(l.Items) >= PageLimit:
			return nil, nil, 0, pages, fmt.Errorf("%w: a full page without a count", errInconsistent)
		case !l.HasCount:
			// Without a count, a short page is the last one.
			count = int64(q.Offset + len(l.Items))
		case count < 0:
			count = l.Count
		case l.Count != count:
			return nil, nil, 0, pages, fmt.Errorf("%w: count changed from %d to %d between pages", errInconsistent, count, l.Count)
		}
		for i, raw := range l.Items {
			at := q.Offset + i
			rec, err := cms.DecodeListedCall(raw)
			if err != nil || rec.CallID == nil || *rec.CallID == "" {
				// A row that is no call's: rejected, the rest of the
				// slice kept. It still counts towards the slice's unique
				// rows, under its place, so the count reconciles.
				reason := "no callId"
				if err != nil {
					reason = "undecodable: " + err.Error()
				}
				ids[rowPlace(at)] = true
				rejected = append(rejected, rejectRow(at, reason, raw))
				continue
			}
			key := extract.Key{CCID: d.cfg.CCID, VDN: vdn, CallID: *rec.CallID}
			if ids[key.CallID] {
				continue
			}
			ids[key.CallID] = true
			if err := key.Validate(); err != nil {
				rejected = append(rejected, rejectRow(at, err.Error(), raw))
				continue
			}
			calls = append(calls, Call{Key: key, Inbound: inbound, Record: rec, Raw: raw, FetchedAt: a.FetchedAt})
		}
		q.Offset += PageLimit
		if int64(q.Offset) >= count {
			break
		}
		if len(l.Items) == 0 {
			return nil, nil, 0, pages, fmt.Errorf("%w: an empty page at offset %d of %d", errInconsistent, q.Offset-PageLimit, count)
		}
	}
	if int64(len(ids)) != count {
		return nil, nil, 0, pages, fmt.Errorf("%w: %d unique call IDs for a count of %d", errInconsistent, len(ids), count)
	}
	return calls, rejected, count, pages, nil
}
