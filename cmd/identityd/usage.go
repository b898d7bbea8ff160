package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// commands are the subcommands in the order --help lists them, each with its one-line summary.
var commands = []struct{ name, summary string }{
	{"serve", "API + worker pool + scheduler in one process (the default; embedded Redis without --redis-url)"},
	{"api", "HTTP API only; needs --redis-url or --redis-cluster (shared with the workers)"},
	{"worker", "worker pool + scheduler only; needs --redis-url or --redis-cluster (shared with the API)"},
	{"redact", "bulk redaction through the API (filters, --dry-run), with a progress bar"},
	{"bench", "built-in load generator; needs a Redis you can spare"},
	{"healthcheck", "exit 0 when the local admin listener answers /readyz (for container health checks)"},
	{"version", "print the module version and the commit it was built from"},
}

// flagDoc describes one flag for --help: the kind of value it takes (empty for a switch), its default and its
// environment variable. Help shows this static default, never a value read from the environment, which may be a
// secret.
type flagDoc struct {
	name, env, def, kind, usage string
}

// mainUsage is the text of `identityd --help`: the subcommands, then the flags serve, api and worker share.
func mainUsage() string {
	var b strings.Builder
	b.WriteString("usage: identityd [command] [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("\nFlags of serve, api and worker (a flag wins over its environment variable):\n")
	printFlags(&b, daemonFlags)
	b.WriteString("\nRun \"identityd <command> --help\" for the flags of redact, bench and healthcheck.\n")
	return b.String()
}

// daemonUsage is the text of `identityd serve|api|worker --help`.
func daemonUsage(role string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: identityd %s [flags]\n\n", role)
	for _, c := range commands {
		if c.name == role {
			fmt.Fprintf(&b, "%s\n\n", c.summary)
		}
	}
	b.WriteString("Flags (a flag wins over its environment variable):\n")
	printFlags(&b, daemonFlags)
	return b.String()
}

// printFlags writes one entry per flag: "--name kind" on one line, what it does and its default below.
func printFlags(w io.Writer, docs []flagDoc) {
	for _, d := range docs {
		head := "  --" + d.name
		if d.kind != "" {
			head += " " + d.kind
		}
		var notes []string
		if d.def != "" && d.kind != "" {
			notes = append(notes, "default "+d.def)
		}
		if d.env != "" {
			notes = append(notes, "env "+d.env)
		}
		text := d.usage
		if len(notes) > 0 {
			text += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", head, text)
	}
}

// docsOf describes the flags of fs, taking each one's kind from its type (duration, int, string; none for a
// switch) or from a back-quoted word in its usage.
func docsOf(fs *flag.FlagSet) []flagDoc {
	var docs []flagDoc
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		def := f.DefValue
		if kind == "" && def == "false" {
			def = ""
		}
		docs = append(docs, flagDoc{name: f.Name, def: def, kind: kind, usage: usage})
	})
	return docs
}

// flagError turns an error of the flag package into one line that names the flag with two dashes and points
// at the command's help (the package's own messages name flags with one dash and come with a usage dump).
// Other errors are returned as they are.
func flagError(err error, cmd string) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s; see %s --help", strings.TrimPrefix(name, "-"), cmd)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("flag --%s needs a value; see %s --help", strings.TrimPrefix(name, "-"), cmd)
	}
	if strings.HasPrefix(msg, "bad flag syntax: ") || strings.HasPrefix(msg, "invalid value ") ||
		strings.HasPrefix(msg, "invalid boolean value ") {
		return fmt.Errorf("%s; see %s --help", strings.Replace(msg, " flag -", " flag --", 1), cmd)
	}
	return err
}

// parseFlagSet parses args with fs (whose output is discarded) and checks that nothing follows the flags.
// It returns flag.ErrHelp for -h and --help (ParseFlags then prints the command's help), one-line errors
// otherwise.
func parseFlagSet(fs *flag.FlagSet, args []string, cmd string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return flagError(err, cmd)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see %s --help", fs.Arg(0), cmd)
	}
	return nil
}

// versionString describes the build from its module information: the module version (or Version when set at
// build time), the VCS commit and whether the tree had uncommitted changes, and the Go version.
func versionString(bi *debug.BuildInfo) string {
	version := Version
	if version == "dev" && bi != nil && bi.Main.Version != "" {
		version = bi.Main.Version // "(devel)" for a build from a checkout, "v1.2.3" for go install …@v1.2.3
	}
	commit, modified, goVersion := "unknown", false, ""
	if bi != nil {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := version + " commit " + commit
	if modified {
		line += " (modified)"
	}
	if goVersion != "" {
		line += " " + goVersion
	}
	return line
}

// buildVersion is the version the process reports in its log and for `identityd version`.
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionString(bi)
}
