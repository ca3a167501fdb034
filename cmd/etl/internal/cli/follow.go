package cli

import (
	"net"
	"time"

	"github.com/cmsetl/cms-etl/extract/queue"
)

// followConfig holds the flags of live enrichment: a long-running follower
// of the queue, the tracking of live calls, and the HTTP endpoints of a
// service. It is part of Config.
type followConfig struct {
	Follow       bool          // --follow: wait for work instead of ending
	PollInterval time.Duration // --poll-interval
	TrackEvery   time.Duration // --track-every: 0 = one answer per call
	TrackMax     time.Duration // --track-max
	Listen       string        // --listen: address of /metrics and /healthz
}

// registerFollow declares the follower's flags (etl run).
func (c *Config) registerFollow(fs *flagSet) {
	fs.in(groupInput)
	fs.BoolVar(&c.Follow, "follow", false, "queue input: keep running, claiming new rows as they arrive (NOTIFY, polling as the fallback), until SIGINT/SIGTERM (exit 0)")
	fs.DurationVar(&c.PollInterval, "poll-interval", queue.DefaultPollInterval, "with --follow: claim at least this often when no notification comes")
	fs.DurationVar(&c.TrackEvery, "track-every", 0, "queue input: ask a call that answered live again this often until it ends (0 = one answer per call)")
	fs.DurationVar(&c.TrackMax, "track-max", queue.DefaultTrackMax, "with --track-every: stop tracking a call this long after its first live answer")
	fs.in(groupLogging)
	fs.StringVar(&c.Listen, "listen", "", "serve /metrics (Prometheus) and /healthz on this `ADDR` (host:port) while the run lives")
}

// validateFollow checks the follower's flags; the error names the flag.
func (c *Config) validateFollow() error {
	if c.Input != "queue" {
		for _, f := range []string{"follow", "poll-interval", "track-every", "track-max"} {
			if c.set[f] {
				return usagef("--%s only applies with --input queue", f)
			}
		}
	}
	if c.set["poll-interval"] && !c.Follow {
		return usagef("--poll-interval only applies with --follow")
	}
	if c.Follow && (c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Hour) {
		return usagef("--poll-interval %s: want 10ms..1h", c.PollInterval)
	}
	if c.TrackEvery < 0 || (c.TrackEvery > 0 && c.TrackEvery < 100*time.Millisecond) {
		return usagef("--track-every %s: want 0 (no tracking) or at least 100ms", c.TrackEvery)
	}
	if c.TrackEvery > 0 && c.Query == queue.QueryCDR {
		return usagef("--track-every only applies with --query basic: a finished call's CDR does not change")
	}
	if c.set["track-max"] && c.TrackEvery == 0 {
		return usagef("--track-max only applies with --track-every")
	}
	if c.TrackEvery > 0 && c.TrackMax <= 0 {
		return usagef("--track-max %s: must be positive", c.TrackMax)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return usagef("--listen %q: want host:port, e.g. 127.0.0.1:9464 or :9464", c.Listen)
		}
	}
	return nil
}

// claimBatch is how many queue rows a run claims at once. A run that drains
// the queue claims well ahead of its workers; a follower claims about what
// its workers can start, so a new call inserted meanwhile is claimed next
// instead of waiting behind claimed polls of tracked calls while the rate
// is short.
func claimBatch(c *Config) int {
	if c.Follow {
		return max(c.Concurrency/2, 4)
	}
	return max(4*c.Concurrency, 64)
}
