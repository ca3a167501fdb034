package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Help groups, in the order help lists them. A flag belongs to the group
// named by the last fs.in before its registration; a flag added later only
// needs to be registered after the right fs.in.
const (
	groupInput    = "input"
	groupAPI      = "api"
	groupRate     = "rate"
	groupOutput   = "output"
	groupPostgres = "postgres"
	groupRun      = "run"
	groupLogging  = "logging"
)

var groupTitles = []struct{ name, title string }{
	{groupInput, "Input"},
	{groupAPI, "CC-CMS API"},
	{groupRate, "Rate"},
	{groupOutput, "Output"},
	{groupPostgres, "PostgreSQL"},
	{groupRun, "Run control"},
	{groupLogging, "Logging and reporting"},
}

// flagSet is a command's flags, each registered under a help group.
type flagSet struct {
	*flag.FlagSet
	cmd      string // "run", for messages
	synopsis string
	group    string            // group of the flags registered next
	groupOf  map[string]string // flag name -> group
}

func newFlagSet(cmd, synopsis string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(cmd, flag.ContinueOnError), cmd: cmd, synopsis: synopsis, groupOf: map[string]string{}}
	// parse reports errors itself, as one line.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// in puts the flags registered after it into group.
func (fs *flagSet) in(group string) *flagSet {
	fs.settle()
	fs.group = group
	return fs
}

// settle assigns the flags registered since the last call to the current group.
func (fs *flagSet) settle() {
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := fs.groupOf[f.Name]; !ok {
			fs.groupOf[f.Name] = fs.group
		}
	})
}

// printHelp writes the usage line and the flags by group, spelled --name.
func (fs *flagSet) printHelp(w io.Writer) {
	fs.settle()
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: etl %s\n", fs.synopsis)
	byGroup := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byGroup[fs.groupOf[f.Name]] = append(byGroup[fs.groupOf[f.Name]], f) })
	titles := groupTitles
	for g := range byGroup {
		if !knownGroup(g) { // listed last rather than lost
			titles = append(titles, struct{ name, title string }{g, "Other"})
		}
	}
	for _, g := range titles {
		flags := byGroup[g.name]
		if len(flags) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		for _, f := range flags {
			kind, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(&b, "  --%s", f.Name)
			if kind != "" {
				fmt.Fprintf(&b, " %s", kind)
			}
			fmt.Fprintf(&b, "\n        %s", usage)
			if showDefault(f, kind) {
				if kind == "string" {
					fmt.Fprintf(&b, " (default %q)", f.DefValue)
				} else {
					fmt.Fprintf(&b, " (default %s)", f.DefValue)
				}
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString("\nA flag may also be written with one dash (-name), and its value after '=' (--name=value).\n")
	_, _ = io.WriteString(w, b.String())
}

func knownGroup(name string) bool {
	for _, g := range groupTitles {
		if g.name == name {
			return true
		}
	}
	return false
}

// showDefault leaves out zero defaults, as flag.PrintDefaults does.
func showDefault(f *flag.Flag, kind string) bool {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]":
		return false
	}
	return kind != "value" || f.DefValue != ""
}

// parse parses args; --help prints the help on stdout and yields errHelp.
// Any other problem is one UsageError naming the flag.
func parse(fs *flagSet, args []string, env Env) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(env.Stdout)
			return errHelp
		}
		return fs.usageError(err)
	}
	if fs.NArg() > 0 {
		return fs.usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	return nil
}

// The flag package's messages name flags with one dash.
var (
	unknownFlagRE = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	dashFlagRE    = regexp.MustCompile(`(^|[\s(])-([A-Za-z][\w-]*)`)
)

// usageError turns a flag package error into one line with the -- spelling
// and, for an unknown flag, the nearest known one.
func (fs *flagSet) usageError(err error) error {
	msg := err.Error()
	if m := unknownFlagRE.FindStringSubmatch(msg); m != nil {
		ue := fs.usage(fmt.Errorf("unknown flag --%s", m[1])).(*UsageError)
		if near := fs.nearest(m[1]); near != "" {
			ue.Hint = fmt.Sprintf("did you mean --%s? see `etl %s --help`", near, fs.cmd)
		}
		return ue
	}
	return fs.usage(errors.New(dashFlagRE.ReplaceAllString(msg, "$1--$2")))
}

// usage is a UsageError pointing at this command's help.
func (fs *flagSet) usage(err error) error {
	return &UsageError{Err: err, Hint: fmt.Sprintf("see `etl %s --help`", fs.cmd)}
}

// nearest is the known flag closest to name: one it starts or that starts
// it, else one within a small edit distance; "" when none is close.
func (fs *flagSet) nearest(name string) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return nearest(name, names)
}

func nearest(name string, candidates []string) string {
	if name == "" {
		return ""
	}
	best, bestDist := "", 0
	for _, c := range candidates {
		// --out -> --output, --sk -> --sk-file: the closest completion wins.
		if len(name) >= 2 && (strings.HasPrefix(c, name) || strings.HasPrefix(name, c)) {
			if d := abs(len(c) - len(name)); best == "" || d < bestDist || d == bestDist && c < best {
				best, bestDist = c, d
			}
		}
	}
	if best != "" {
		return best
	}
	limit := max(1, len(name)/3)
	for _, c := range candidates {
		if d := editDistance(name, c); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the optimal string alignment distance over bytes (flag
// names are ASCII): insertions, deletions, substitutions and transpositions
// of adjacent letters ("inptu") each cost one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
