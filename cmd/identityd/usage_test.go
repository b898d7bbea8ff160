package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runArgs runs Main with args the way main does and returns what it printed.
func runArgs(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := NewMain(&out, &errOut)
	if err := m.ParseFlags(args); err != nil {
		return out.String(), errOut.String(), err
	}
	err = m.Run(context.Background())
	return out.String(), errOut.String(), err
}

func TestHelp(t *testing.T) {
	t.Parallel()
	t.Run("ListsCommandsAndTypedFlags", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--addr", "127.0.0.1:1", "--help"}} {
			out, errOut, err := runArgs(t, args...)
			require.NoError(t, err, args)
			require.Empty(t, errOut, args)
			for _, c := range commands {
				require.Regexp(t, `(?m)^  `+c.name+` +\S`, out, "one line for %s", c.name)
			}
			for _, want := range []string{"--verification-delay duration", "--concurrency int", "--rate-limit float",
				"--redis-url url", "--addr host:port", "(default 2s; env IDENTITYD_VERIFICATION_DELAY)"} {
				require.Contains(t, out, want, args)
			}
			require.NotContains(t, out, "flag: help requested")
		}
	})
	t.Run("PerCommand", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"serve", "--help"}, []string{"usage: identityd serve", "--retention duration"}},
			{[]string{"worker", "-h"}, []string{"usage: identityd worker", "--concurrency int"}},
			{[]string{"redact", "--help"}, []string{"usage: identityd redact", "--poll-interval duration", "--created-lte time", "--dry-run\n"}},
			{[]string{"help", "redact"}, []string{"usage: identityd redact"}},
			{[]string{"healthcheck", "-h"}, []string{"--timeout duration"}},
			{[]string{"bench", "--help"}, []string{"-sessions int", "-list-duration duration"}},
			{[]string{"version", "--help"}, []string{"usage: identityd version"}},
		} {
			out, errOut, err := runArgs(t, tc.args...)
			require.NoError(t, err, tc.args)
			require.Empty(t, errOut, tc.args)
			for _, w := range tc.want {
				require.Contains(t, out, w, tc.args)
			}
		}
	})
}

// Help shows each flag's default, never the value its environment variable holds, which may be a secret.
func TestHelp_DoesNotShowEnvValues(t *testing.T) { // not parallel: t.Setenv
	t.Setenv("IDENTITYD_ADMIN_PASSWORD", "hunter2-from-env")
	t.Setenv("IDENTITYD_API_KEY", "sk_test_fromenvironment")
	for _, args := range [][]string{{"--help"}, {"redact", "--help"}} {
		out, _, err := runArgs(t, args...)
		require.NoError(t, err)
		require.NotContains(t, out, "hunter2-from-env")
		require.NotContains(t, out, "sk_test_fromenvironment")
	}
}

func TestUnknownFlag_OneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--colour"}, "unknown flag --colour; see identityd --help"},
		{[]string{"serve", "--colour=red"}, "unknown flag --colour; see identityd --help"},
		{[]string{"api", "-colour"}, "unknown flag --colour; see identityd --help"},
		{[]string{"redact", "--colour"}, "unknown flag --colour; see identityd redact --help"},
		{[]string{"bench", "--colour"}, "unknown flag --colour; see identityd bench --help"},
		{[]string{"healthcheck", "--colour"}, "unknown flag --colour; see identityd healthcheck --help"},
		{[]string{"--addr"}, "flag --addr needs a value; see identityd --help"},
		{[]string{"redact", "--poll-interval", "often"}, `invalid value "often" for flag --poll-interval`},
		{[]string{"serv"}, `unknown command "serv"; see identityd --help`},
	} {
		out, errOut, err := runArgs(t, tc.args...)
		require.Error(t, err, tc.args)
		require.Contains(t, err.Error(), tc.want, tc.args)
		require.NotContains(t, err.Error(), "\n", tc.args)
		require.Empty(t, out, tc.args)
		require.Empty(t, errOut, "no usage dump: %v", tc.args)
	}
}

func TestPrintFlags_Format(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printFlags(&b, []flagDoc{{"verification-delay", "IDENTITYD_VERIFICATION_DELAY", "2s", "duration", "how long"},
		{"dry-run", "", "", "", "change nothing"}})
	require.Equal(t, "  --verification-delay duration\n        how long (default 2s; env IDENTITYD_VERIFICATION_DELAY)\n"+
		"  --dry-run\n        change nothing\n", b.String())
}
