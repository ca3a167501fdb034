// Package outcome names how an input row ends. Every row a run reads ends in
// exactly one outcome, and a run's counts add up to the rows read. The names
// are a contract: they appear in the summary, the run_summary event, the
// metrics file, cms.etl_run, cms.call_failure and the rejects CSV.
package outcome

// Outcome of one input row.
type Outcome string

const (
	Loaded        Outcome = "loaded"         // row committed to every output
	NoData        Outcome = "no_data"        // the API had nothing for the call
	Failed        Outcome = "failed"         // permanent failure, or transient after the last attempt
	Rejected      Outcome = "rejected"       // invalid input, never sent
	Duplicate     Outcome = "duplicate"      // the same key earlier in this run
	AlreadyLoaded Outcome = "already_loaded" // every output already holds the row (resume, rerun)
	Unprocessed   Outcome = "unprocessed"    // read, but the run stopped before it was done; the next run takes it
	// Tracked: the call answered live and is asked again until it ends
	// (queue tracking): its latest state is committed to the outputs that
	// keep every state (the warehouse) and kept in the queue for the
	// outputs that take one row per call (Parquet), which get it when the
	// call ends.
	Tracked Outcome = "tracked"
)

// All lists the outcomes in report order.
var All = []Outcome{Loaded, NoData, Failed, Rejected, Duplicate, AlreadyLoaded, Unprocessed, Tracked}

// Counts by outcome.
type Counts map[Outcome]int64

// Total is the number of rows accounted for.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Clone copies c.
func (c Counts) Clone() Counts {
	out := make(Counts, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}
