package cli

import (
	"iter"
	"time"
	_ "time/tzdata" // --tz works on hosts without a zoneinfo database: the binary needs nothing else

	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/pipeline/adapters"
)

// validateQuery checks --query and the flags only the cdr query takes:
// --direction and --tz.
func (c *Config) validateQuery() error {
	if queue.CheckQuery(c.Query) != nil {
		return usagef("--query %q: want basic or cdr", c.Query)
	}
	if c.Query != queue.QueryCDR {
		for _, f := range []string{"direction", "tz"} {
			if c.set[f] {
				return usagef("--%s only applies with --query cdr", f)
			}
		}
	}
	if _, err := parseDirection(c.Direction); err != nil {
		return err
	}
	if _, err := loadZone(c.TZ); err != nil {
		return err
	}
	return nil
}

// parseDirection reads --direction: in or out; "" is none.
func parseDirection(s string) (*bool, error) {
	var in bool
	switch s {
	case "":
		return nil, nil
	case "in":
		in = true
	case "out":
	default:
		return nil, usagef("--direction %q: want in or out", s)
	}
	return &in, nil
}

// loadZone reads --tz, an IANA zone name such as Asia/Shanghai (UTC by
// default).
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, usagef("--tz %q: not a time zone; want an IANA name such as UTC or Asia/Shanghai", name)
	}
	return loc, nil
}

// directionRule is where the cdr query's keys get their direction: the
// input row (the CSV's isCallIn column, the queue's is_call_in), else
// --direction; without either the key is rejected. Validated already.
func (c *Config) directionRule() adapters.Direction {
	if c.Query != queue.QueryCDR {
		return adapters.Direction{}
	}
	def, _ := parseDirection(c.Direction)
	missing := "no direction: the row has no isCallIn value and --direction is not set"
	if c.Input == "queue" {
		missing = "no direction: the queue row's is_call_in is NULL and --direction is not set"
	}
	return adapters.Direction{Required: true, Default: def, Missing: missing}
}

// queueQuery is the queue rows a worker claims: those of its --query.
func (c *Config) queueQuery() string {
	if c.Query == "" {
		return queue.QueryBasic
	}
	return c.Query
}

// describeQuery names the interface --query asks, for logs.
func describeQuery(q string) string {
	if q == queue.QueryCDR {
		return "querycalldetailbyid"
	}
	return "querybasiccallinfo"
}

// registerEnqueueQuery declares etl enqueue's --query and --direction.
func (c *Config) registerEnqueueQuery(fs *flagSet) {
	fs.StringVar(&c.Query, "query", queue.QueryBasic, "queue the keys for `basic|cdr`: what etl run --input queue --query asks about them")
	fs.StringVar(&c.Direction, "direction", "", "--query cdr: the direction `in|out` of rows without an isCallIn value")
}

// enqueueEntries are the CSV's valid rows as queue entries, each with its
// direction as etl run would resolve it (the row's isCallIn, else
// --direction); for the cdr query a row with neither is rejected to
// onReject, as etl run would reject it.
func (c *Config) enqueueEntries(r *csvsource.Reader, onReject func(csvsource.Item)) iter.Seq2[queue.Entry, error] {
	rule := c.directionRule()
	return func(yield func(queue.Entry, error) bool) {
		for it, err := range r.Valid(onReject) {
			if err != nil {
				yield(queue.Entry{}, err)
				return
			}
			in, err := rule.Of(it.Inbound)
			if err != nil {
				it.Err = err
				onReject(it)
				continue
			}
			if !yield(queue.Entry{Key: it.Key, Inbound: in}, nil) {
				return
			}
		}
	}
}
