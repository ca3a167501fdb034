// Package adapters connects the pipeline to the world: its sources (CSV
// files, the queue), its queries (the CMS endpoints and their transforms),
// its outputs (Parquet, the warehouse) and its ledgers (the queue's
// acknowledgement, the failure logs), over the extract and load packages.
// The pipeline itself sees only its own small interfaces.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/transform"
)

// BasicQuery asks querybasiccallinfo about each item and makes a
// cms.call_info row of a live answer.
func BasicQuery(c *cms.Client, runID string) pipeline.Query[transform.Row] {
	return func(ctx context.Context, it pipeline.Item) (pipeline.Answer[transform.Row], pool.Verdict, error) {
		res := cms.Fetch(ctx, c, cms.BasicCallInfo, cms.Request{Key: it.Key})
		a, v, err := answerOf[cms.Record, transform.Row](res)
		if a.Outcome == outcome.Loaded {
			a.Row, a.Unknown = transform.ToRow(transform.Input{Key: it.Key, Record: res.Record, Raw: res.Raw, FetchedAt: res.FetchedAt, RunID: runID})
			a.Problems = res.Record.Problems
		}
		return a, v, err
	}
}

// DetailQuery asks querycalldetailbyid for each item's CDR, in the item's
// direction, and makes a cms.call_detail row; zone is the tenant's, for the
// CDR's local date-times.
func DetailQuery(c *cms.Client, runID string, zone *time.Location) pipeline.Query[transform.DetailRow] {
	return func(ctx context.Context, it pipeline.Item) (pipeline.Answer[transform.DetailRow], pool.Verdict, error) {
		res := cms.Fetch(ctx, c, cms.CallDetailByID, cms.Request{Key: it.Key, Inbound: it.Inbound})
		a, v, err := answerOf[cms.CallDetail, transform.DetailRow](res)
		if a.Outcome == outcome.Loaded {
			a.Row, a.Unknown = transform.ToDetailRow(transform.DetailInput{Key: it.Key, Record: res.Record, Raw: res.Raw,
				Inbound: it.Inbound, Zone: zone, FetchedAt: res.FetchedAt, RunID: runID})
			a.Problems = res.Record.Problems
		}
		return a, v, err
	}
}

// answerOf maps a call's class to its outcome and what it means for the run
// (the row is the caller's).
func answerOf[Rec any, R any](res cms.Result[Rec]) (pipeline.Answer[R], pool.Verdict, error) {
	a := pipeline.Answer[R]{ResultCode: res.ResultCode, HTTPStatus: res.HTTPStatus, Attempts: res.Attempts}
	switch res.Class {
	case cms.ClassOK:
		a.Outcome = outcome.Loaded
		return a, pool.Answered, nil
	case cms.ClassNoData:
		a.Outcome = outcome.NoData
		return a, pool.Answered, nil
	case cms.ClassRejected:
		a.Outcome, a.Reason = outcome.Rejected, res.Message
		return a, pool.Rejected, res.Err
	case cms.ClassFatal:
		return a, pool.Fatal, fatalError(res)
	}
	a.Outcome, a.Reason = outcome.Failed, failureReason(res)
	if res.Class == cms.ClassTransient {
		a.Retry = true
		if errors.Is(res.Err, ratecontrol.ErrStopped) {
			// The rate controller gave up (a rate group lost its database).
			return a, pool.Fatal, res.Err
		}
		return a, pool.Transient, errors.New(res.Message)
	}
	var se *cms.StatusError
	if errors.As(res.Err, &se) {
		return a, pool.HTTPError, se
	}
	return a, pool.Answered, nil
}

// FatalAnswer is a call's answer that stops the run (401, 403, TLS): the
// message names the call and the status; the client's error is underneath.
type FatalAnswer struct {
	msg string
	err error
}

func (e *FatalAnswer) Error() string { return e.msg }
func (e *FatalAnswer) Unwrap() error { return e.err }

func fatalError[Rec any](r cms.Result[Rec]) error {
	msg := fmt.Sprintf("fatal error talking to CC-CMS for %s: %s", r.Key, r.Message)
	if r.HTTPStatus != 0 {
		msg = fmt.Sprintf("fatal response from CC-CMS for %s: HTTP %d: %s", r.Key, r.HTTPStatus, r.Message)
	}
	return &FatalAnswer{msg: msg, err: r.Err}
}

func failureReason[Rec any](r cms.Result[Rec]) string {
	msg := r.Message
	if msg == "" && r.Err != nil {
		msg = r.Err.Error()
	}
	return r.Class.String() + ": " + msg
}
