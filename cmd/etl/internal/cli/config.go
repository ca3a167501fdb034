package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load"
)

// Config is everything a run can be told. Flags win over environment
// variables; defaults are the values registered in (*Config).register and
// shown by `etl run --help`.
type Config struct {
	// Input: "csv:FILE" or "queue".
	Input string
	// Outputs: "parquet:DIR" and/or "postgres".
	Outputs []string

	APIURL          string // --api-url, CMS_API_URL
	AK              string // --ak, CMS_AK
	SKFile          string // --sk-file; else CMS_SK
	sk              string // never printed
	DefaultCCID     int    // --cc-id
	DefaultVDN      int    // --vdn
	Rate            float64
	RateGroup       string // --rate-group: share Rate with the runs of this group (needs the database)
	Burst           int
	Concurrency     int
	MaxAttempts     int
	RequestTimeout  time.Duration
	CAFile          string
	TLSServerName   string
	InsecureSkip    bool
	SignedHeaders   string
	TimestampPrec   string // "ms" or "s"
	MaxTransient    int
	Grace           time.Duration
	CommitRows      int
	CommitInterval  time.Duration
	MetricsFile     string
	LogFormat       string // auto, console, json
	LogLevel        string
	Progress        string // auto, bar, log, none
	Summary         string // auto, text, json, none
	DatabaseURL     string // --database-url, DATABASE_URL
	Refresh         bool
	Lease           time.Duration
	MaxItems        int64
	MaxDuration     time.Duration
	RunID           string
	QueueMaxAttempt int
	Query           string // --query: basic (querybasiccallinfo) or cdr (querycalldetailbyid)
	Direction       string // --direction: in or out, for keys without their own (cdr)
	TZ              string // --tz: the tenant's zone, for the CDR's local date-times
	followConfig           // --follow, --track-every, --listen...: follow.go

	set      map[string]bool
	warnings []string // about how secrets were given; logged once a logger exists
}

// UsageError is a bad flag or combination: exit code 2. Hint says what to
// do; empty means "see the command's --help".
type UsageError struct {
	Err  error
	Hint string
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// registerAPI declares the flags shared by the commands that talk to CC-CMS.
func (c *Config) registerAPI(fs *flagSet) {
	fs.in(groupAPI)
	fs.StringVar(&c.APIURL, "api-url", "", "CC-CMS base `URL`, e.g. https://10.0.0.5:28443 (env CMS_API_URL)")
	fs.StringVar(&c.AK, "ak", "", "access key (env CMS_AK)")
	fs.StringVar(&c.SKFile, "sk-file", "", "`FILE` holding the secret key; otherwise env CMS_SK (never a flag value)")
	fs.StringVar(&c.CAFile, "ca-file", "", "`PEM` bundle of CAs to trust for the API's certificate")
	fs.StringVar(&c.TLSServerName, "tls-server-name", "", "name to verify the certificate against, for IP endpoints")
	fs.BoolVar(&c.InsecureSkip, "insecure-skip-verify", false, "do not verify the API's certificate (logged as a warning)")
	fs.StringVar(&c.SignedHeaders, "signed-headers", "content-length;content-type;host", "auth-v2 signed headers, ';'-separated (alternative: host)")
	fs.StringVar(&c.TimestampPrec, "timestamp-precision", "ms", "auth-v2 timestamp precision: ms or s")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 15*time.Second, "timeout of one attempt")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 5, "attempts per call, retries included")
	c.registerLog(fs)
}

func (c *Config) registerLog(fs *flagSet) {
	fs.in(groupLogging)
	fs.StringVar(&c.LogFormat, "log-format", "auto", "log format: auto (console on a terminal, json otherwise), console, json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// registerReport declares how a job reports while and after it runs.
func (c *Config) registerReport(fs *flagSet) {
	fs.in(groupLogging)
	fs.StringVar(&c.Progress, "progress", "auto", "progress: auto (bar on a terminal, log lines otherwise), bar, log, none")
	fs.StringVar(&c.Summary, "summary", "auto", "run summary: auto (text on stderr when it is a terminal, else only the run_summary log event), text or json (on stdout), none")
	fs.StringVar(&c.MetricsFile, "metrics-file", "", "write Prometheus text-format metrics to `FILE` at the end (atomically), for node_exporter's textfile collector")
}

func (c *Config) registerDB(fs *flagSet) {
	fs.in(groupPostgres)
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL `URL` (env DATABASE_URL)")
}

func (c *Config) registerRun(fs *flagSet) {
	c.registerAPI(fs)
	c.registerDB(fs)
	c.registerReport(fs)
	fs.in(groupInput)
	fs.StringVar(&c.Input, "input", "", "input: `csv:FILE|queue` (csv:- is stdin)")
	fs.IntVar(&c.DefaultCCID, "cc-id", 0, "ccId for CSV rows without one")
	fs.IntVar(&c.DefaultVDN, "vdn", 0, "vdn for CSV rows without one")
	fs.DurationVar(&c.Lease, "lease", time.Minute, "queue input: lease on claimed rows (extended while in flight)")
	fs.Int64Var(&c.MaxItems, "max-items", 0, "queue input: stop after claiming this many rows (0 = drain what is due)")
	fs.DurationVar(&c.MaxDuration, "max-duration", 0, "queue input: stop claiming after this long (0 = no limit)")
	fs.IntVar(&c.QueueMaxAttempt, "queue-max-attempts", 5, "queue input: runs a transiently failing row is tried in before it is marked failed")
	fs.StringVar(&c.Query, "query", queue.QueryBasic, "what to ask about each key: `basic|cdr` (basic: querybasiccallinfo, a call in progress; cdr: querycalldetailbyid, the CDR of a finished call)")
	fs.StringVar(&c.Direction, "direction", "", "--query cdr: the direction `in|out` of keys whose CSV row (isCallIn) or queue row (is_call_in) gives none")
	fs.StringVar(&c.TZ, "tz", "UTC", "--query cdr: the tenant's time `ZONE` (IANA name), in which the CDR's beginTime/endTime are written")
	fs.in(groupOutput)
	fs.Var(listFlag{&c.Outputs}, "output", "output: `parquet:DIR|postgres`, or both (repeat the flag or separate with commas)")
	c.registerCommit(fs)
	fs.BoolVar(&c.Refresh, "refresh", false, "with postgres output: query IDs already in the output table (cms.call_info; cms.call_detail with --query cdr) again")
	c.registerRate(fs)
	c.registerFollow(fs)
	c.registerRunControl(fs)
}

// registerCommit declares how often a job commits.
func (c *Config) registerCommit(fs *flagSet) {
	fs.in(groupOutput)
	fs.IntVar(&c.CommitRows, "commit-rows", 0, "commit after this many rows (default 10000; 5000 with postgres output)")
	fs.DurationVar(&c.CommitInterval, "commit-interval", 0, "commit at least this often (default 10s; 2s with postgres output)")
}

// commitDefaults fills --commit-rows and --commit-interval when not given:
// a warehouse commits smaller batches more often.
func (c *Config) commitDefaults() {
	if c.CommitRows == 0 {
		c.CommitRows = 10000
		if c.Postgres() {
			c.CommitRows = 5000
		}
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 10 * time.Second
		if c.Postgres() {
			c.CommitInterval = 2 * time.Second
		}
	}
}

// registerRate declares the flags that pace a job's requests.
func (c *Config) registerRate(fs *flagSet) {
	fs.in(groupRate)
	fs.Float64Var(&c.Rate, "rate", 10, "requests per second for the whole run, retries included (0 = unlimited)")
	fs.StringVar(&c.RateGroup, "rate-group", "", "share --rate with the other runs started with this group `NAME` on the same database (needs --database-url or DATABASE_URL)")
	fs.IntVar(&c.Burst, "burst", 1, "rate limiter burst")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "requests in flight")
	fs.IntVar(&c.MaxTransient, "max-transient-streak", 50, "stop the run after this many consecutive calls failed transiently (API down), or got an HTTP error such as 404 (wrong URL); -1 = never")
}

// registerRunControl declares the run's name and how it stops.
func (c *Config) registerRunControl(fs *flagSet) {
	fs.in(groupRun)
	fs.DurationVar(&c.Grace, "grace", 10*time.Second, "on SIGINT/SIGTERM, how long in-flight requests may finish; the last commit may take "+pipeline.DefaultCommitAllowance.String()+" more")
	fs.StringVar(&c.RunID, "run-id", "", "run identifier (default: UTC time and a random suffix)")
}

// applyEnv fills what the flags did not set from the environment.
func (c *Config) applyEnv(fs *flagSet) error {
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	envFor := map[string]*string{"api-url": &c.APIURL, "ak": &c.AK, "database-url": &c.DatabaseURL}
	envName := map[string]string{"api-url": "CMS_API_URL", "ak": "CMS_AK", "database-url": "DATABASE_URL"}
	for flagName, dst := range envFor {
		if fs.Lookup(flagName) == nil || c.set[flagName] {
			continue
		}
		if v, ok := os.LookupEnv(envName[flagName]); ok {
			*dst = strings.TrimSpace(v)
		}
	}
	if c.set["database-url"] && urlHasPassword(c.DatabaseURL) {
		c.warnings = append(c.warnings, "--database-url holds a password on the command line, where other users of the host can read it (ps, /proc); "+
			"set DATABASE_URL in the environment instead, or keep the password in ~/.pgpass")
	}
	if fs.Lookup("sk-file") == nil {
		return nil
	}
	if c.SKFile != "" {
		b, err := os.ReadFile(c.SKFile)
		if err != nil {
			return usagef("--sk-file: %w", err)
		}
		c.sk = strings.TrimSpace(string(b))
		if c.sk == "" {
			return usagef("--sk-file: %s is empty", c.SKFile)
		}
		// Like ssh with a private key, but a warning: the run goes on.
		if fi, err := os.Stat(c.SKFile); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			c.warnings = append(c.warnings, fmt.Sprintf("--sk-file %s is open to group or others (mode %04o); restrict it: chmod 600 %s",
				c.SKFile, fi.Mode().Perm(), c.SKFile))
		}
	} else {
		c.sk = strings.TrimSpace(os.Getenv("CMS_SK"))
	}
	return nil
}

// urlHasPassword reports whether a PostgreSQL connection string, URL or
// keyword/value form, carries a password.
func urlHasPassword(conn string) bool {
	if u, err := url.Parse(conn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return strings.Contains(conn, "password=")
}

// logWarnings logs the warnings applyEnv collected.
func (c *Config) logWarnings(log zerolog.Logger) {
	for _, w := range c.warnings {
		log.Warn().Msg(w)
	}
}

// Credentials for auth-v2.
func (c *Config) Credentials() authv2.Credentials { return authv2.Credentials{AK: c.AK, SK: c.sk} }

// TimestampLayout for auth-v2.
func (c *Config) TimestampLayout() string {
	if c.TimestampPrec == "s" {
		return authv2.LayoutSeconds
	}
	return authv2.LayoutMillis
}

// CSVPath is the input file for csv:FILE ("" otherwise).
func (c *Config) CSVPath() string {
	p, _ := strings.CutPrefix(c.Input, "csv:")
	if p == c.Input {
		return ""
	}
	return p
}

// requireDB fails when no database URL was given; when names the case.
func (c *Config) requireDB(when string) error {
	if c.DatabaseURL == "" {
		return usagef("--database-url (or DATABASE_URL) is required%s", when)
	}
	return nil
}

// csvConfig is the CSV source configuration for --input csv:FILE.
func (c *Config) csvConfig() csvsource.Config {
	// Only the CDR is asked per direction: for any other query an isCallIn
	// column is the producer's business, ignored like any other.
	return csvsource.Config{Path: c.CSVPath(), DefaultCCID: c.DefaultCCID, DefaultVDN: c.DefaultVDN, Direction: c.Query == queue.QueryCDR}
}

// ParquetDir is the output directory for parquet:DIR ("" otherwise).
func (c *Config) ParquetDir() string {
	for _, o := range c.Outputs {
		if d, ok := strings.CutPrefix(o, "parquet:"); ok {
			return d
		}
	}
	return ""
}

// Postgres reports whether postgres is an output.
func (c *Config) Postgres() bool {
	for _, o := range c.Outputs {
		if o == "postgres" {
			return true
		}
	}
	return false
}

func (c *Config) validateAPI() error {
	if c.APIURL == "" {
		return usagef("--api-url (or CMS_API_URL) is required")
	}
	u, err := url.Parse(c.APIURL)
	switch {
	case err != nil:
		return usagef("--api-url %s: not a URL; want https://host:port", quoteURL(c.APIURL))
	case u.User != nil:
		// CC-CMS authenticates with auth-v2 only; a password in the URL
		// would sit in ps, shell history and logs for nothing.
		return usagef("--api-url: user info (user@ or user:password@) is not accepted; want https://host:port, " +
			"with the AK in --ak and the SK in --sk-file or CMS_SK")
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return usagef("--api-url %s: want https://host:port", quoteURL(c.APIURL))
	}
	if c.AK == "" {
		return usagef("--ak (or CMS_AK) is required")
	}
	if c.sk == "" {
		return usagef("the secret key is required: set CMS_SK or --sk-file")
	}
	if c.TimestampPrec != "ms" && c.TimestampPrec != "s" {
		return usagef("--timestamp-precision %q: want ms or s", c.TimestampPrec)
	}
	for _, h := range strings.Split(c.SignedHeaders, ";") {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "host", "content-type", "content-length":
		default:
			return usagef("--signed-headers: %q is not one of host, content-type, content-length", h)
		}
	}
	if !strings.Contains(strings.ToLower(c.SignedHeaders), "host") {
		return usagef("--signed-headers must include host")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 20 {
		return usagef("--max-attempts %d: want 1..20", c.MaxAttempts)
	}
	if c.RequestTimeout < 100*time.Millisecond {
		return usagef("--request-timeout %s: want at least 100ms", c.RequestTimeout)
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			return usagef("--ca-file: %w", err)
		}
	}
	return validateLog(c)
}

// quoteURL quotes a URL given on the command line for an error message,
// unless it holds an '@': whatever precedes it may be a password.
func quoteURL(raw string) string {
	if strings.Contains(raw, "@") {
		return "(not shown: it contains '@', which may follow a password)"
	}
	return extract.QuoteValue(raw)
}

func validateReport(c *Config) error {
	switch c.Progress {
	case "auto", "bar", "log", "none":
	default:
		return usagef("--progress %q: want auto, bar, log or none", c.Progress)
	}
	switch c.Summary {
	case "auto", "text", "json", "none":
	default:
		return usagef("--summary %q: want auto, text, json or none", c.Summary)
	}
	return nil
}

func validateLog(c *Config) error {
	switch c.LogFormat {
	case "auto", "console", "json":
	default:
		return usagef("--log-format %q: want auto, console or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return usagef("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// validateRun checks a run's configuration; the error names the flag.
func (c *Config) validateRun() error {
	switch {
	case c.Input == "":
		return usagef("--input is required: csv:FILE or queue")
	case c.Input == "queue":
	case strings.HasPrefix(c.Input, "csv:"):
		if c.CSVPath() == "" {
			return usagef("--input csv: needs a file name, e.g. csv:calls.csv")
		}
	default:
		return usagef("--input %q: want csv:FILE or queue", c.Input)
	}
	if err := c.validateOutputs(); err != nil {
		return err
	}
	if c.Postgres() || c.Input == "queue" {
		if err := c.requireDB(" with --input queue or --output postgres"); err != nil {
			return err
		}
	}
	if err := c.validateQuery(); err != nil {
		return err
	}
	if c.Refresh && !c.Postgres() {
		return usagef("--refresh only applies with --output postgres")
	}
	if c.Input != "queue" {
		for _, f := range []string{"max-items", "max-duration", "lease", "queue-max-attempts"} {
			if c.set[f] {
				return usagef("--%s only applies with --input queue", f)
			}
		}
	} else {
		for _, f := range []string{"cc-id", "vdn"} {
			if c.set[f] {
				return usagef("--%s only applies with --input csv:FILE", f)
			}
		}
	}
	if c.DefaultCCID != 0 {
		if err := (extract.Key{CCID: c.DefaultCCID, VDN: 1, CallID: "1-1"}).Validate(); err != nil {
			return usagef("--cc-id %d: must be 1..%d", c.DefaultCCID, extract.MaxCCID)
		}
	}
	if c.DefaultVDN != 0 {
		if err := (extract.Key{CCID: 1, VDN: c.DefaultVDN, CallID: "1-1"}).Validate(); err != nil {
			return usagef("--vdn %d: must be 1..%d", c.DefaultVDN, extract.MaxVDN)
		}
	}
	if c.MaxItems < 0 || c.MaxDuration < 0 {
		return usagef("--max-items and --max-duration must not be negative")
	}
	if c.Lease < 5*time.Second {
		return usagef("--lease %s: want at least 5s", c.Lease)
	}
	if c.QueueMaxAttempt < 1 {
		return usagef("--queue-max-attempts %d: must be >= 1", c.QueueMaxAttempt)
	}
	if err := c.validateFollow(); err != nil {
		return err
	}
	return c.validateJob()
}

// validateOutputs checks --output: parquet:DIR and/or postgres, each once.
func (c *Config) validateOutputs() error {
	if len(c.Outputs) == 0 {
		return usagef("--output is required: parquet:DIR and/or postgres")
	}
	seen := map[string]bool{}
	for _, o := range c.Outputs {
		kind := o
		if strings.HasPrefix(o, "parquet:") {
			kind = "parquet"
			if strings.TrimPrefix(o, "parquet:") == "" {
				return usagef("--output parquet: needs a directory, e.g. parquet:out")
			}
		} else if o != "postgres" {
			return usagef("--output %q: want parquet:DIR or postgres", o)
		}
		if seen[kind] {
			return usagef("--output: %s given twice", kind)
		}
		seen[kind] = true
	}
	return nil
}

// validateJob checks what every job that asks CC-CMS takes: the rate, the
// commits, reporting, the run's name and the API.
func (c *Config) validateJob() error {
	if c.RateGroup != "" {
		if err := c.requireDB(" with --rate-group"); err != nil {
			return err
		}
		if c.Rate <= 0 {
			return usagef("--rate-group %q: needs a --rate above 0 to share", c.RateGroup)
		}
		if len(c.RateGroup) > 200 {
			return usagef("--rate-group: at most 200 characters")
		}
	}
	if c.Rate < 0 {
		return usagef("--rate %v: must be >= 0 (0 = unlimited)", c.Rate)
	}
	if c.Burst < 1 {
		return usagef("--burst %d: must be >= 1", c.Burst)
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		return usagef("--concurrency %d: want 1..1024", c.Concurrency)
	}
	if c.CommitRows < 0 || c.CommitInterval < 0 || c.Grace < 0 {
		return usagef("--commit-rows, --commit-interval and --grace must not be negative")
	}
	if err := validateReport(c); err != nil {
		return err
	}
	if c.RunID != "" && load.ValidateRunID(c.RunID) != nil {
		return usagef("--run-id %q: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters", c.RunID)
	}
	if c.MaxTransient == 0 {
		return usagef("--max-transient-streak 0: use a positive number, or -1 to never stop on transient failures")
	}
	return c.validateAPI()
}

// errHelp is returned for -h/--help: exit 0 after the usage text.
var errHelp = errors.New("help requested")
