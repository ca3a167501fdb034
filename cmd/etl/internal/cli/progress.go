package cli

import (
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"

	"github.com/cmsetl/cms-etl/cmd/etl/internal/job"
)

// progressDisplay shows a bar on a terminal and log lines otherwise (cron).
type progressDisplay struct {
	log   zerolog.Logger
	bar   *progressbar.ProgressBar
	size  func() (done, total int64)
	every bool
	start time.Time
}

func newProgress(c *Config, env Env, log zerolog.Logger, size func() (int64, int64)) *progressDisplay {
	p := &progressDisplay{log: log, size: size, start: time.Now()}
	mode := c.Progress
	if mode == "auto" {
		mode = "log"
		if env.StderrIsTerminal {
			mode = "bar"
		}
	}
	switch mode {
	case "bar":
		total := int64(-1)
		if size != nil {
			if _, t := size(); t > 0 {
				total = t
			}
		}
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("calls"),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	case "log":
		p.every = true
	}
	return p
}

func (p *progressDisplay) update(pr job.Progress) {
	switch {
	case p.bar != nil:
		if p.size != nil {
			if done, total := p.size(); total > 0 {
				_ = p.bar.Set64(done)
				p.bar.Describe(describe(pr))
				return
			}
		}
		_ = p.bar.Set64(pr.Done)
		p.bar.Describe(describe(pr))
	case p.every:
		el := time.Since(p.start).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(pr.Requests) / el
		}
		p.log.Info().Int64("read", pr.Read).Int64("done", pr.Done).Int64("loaded", pr.Counts[job.Loaded]).
			Int64("failed", pr.Counts[job.Failed]).Int64("requests", pr.Requests).
			Float64("req_per_s", round1(rate)).Msg("progress")
	}
}

func describe(pr job.Progress) string {
	return "loaded " + strconv.FormatInt(pr.Counts[job.Loaded], 10) + ", failed " + strconv.FormatInt(pr.Counts[job.Failed], 10)
}

func (p *progressDisplay) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
