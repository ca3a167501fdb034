package cli

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/queue"
)

// defaultEnqueueFlush: keys written to a pipe as calls start are in the
// queue within this long; a file still fills batches of 50,000.
const defaultEnqueueFlush = 200 * time.Millisecond

// registerEnqueueFlush declares etl enqueue's --flush-interval.
func registerEnqueueFlush(fs *flagSet) *time.Duration {
	return fs.Duration("flush-interval", defaultEnqueueFlush,
		"commit the keys read so far at least this often, so keys piped in (csv:-) are queued as calls start")
}

// enqueueProgress logs each committed batch at debug level.
func enqueueProgress(log zerolog.Logger) func(queue.EnqueueReport) {
	return func(r queue.EnqueueReport) {
		log.Debug().Int64("read", r.Read).Int64("inserted", r.Inserted).Int64("duplicates", r.Duplicates).Msg("enqueued a batch")
	}
}
