package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

func TestParseRedactFlags(t *testing.T) { // not parallel: it clears IDENTITYD_API_KEY
	t.Setenv("IDENTITYD_API_KEY", "")
	c, err := parseRedactFlags([]string{"--api-key", "sk_test_x", "--status", "verified", "--created-gte", "1700000000",
		"--created-lte", "2024-01-31T00:00:00Z", "--related-customer", "cus_1", "--dry-run"})
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080", c.apiURL)
	require.Equal(t, "verified", c.params.Get("status"))
	require.Equal(t, "1700000000", c.params.Get("created[gte]"))
	require.Equal(t, "1706659200", c.params.Get("created[lte]"))
	require.Equal(t, "cus_1", c.params.Get("related_customer"))
	require.Equal(t, "true", c.params.Get("dry_run"))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "verified"}, "missing API key"},
		{[]string{"--api-key", "k"}, "no filter"},
		{[]string{"--api-key", "k", "--status", "done"}, "invalid --status"},
		{[]string{"--api-key", "k", "--created-lte", "31/01/2024"}, "invalid --created-lte"},
		{[]string{"--api-key", "k", "--status", "verified", "--api-url", "ftp://x"}, "invalid --api-url"},
		{[]string{"--api-key", "k", "--status", "verified", "extra"}, "unexpected argument"},
		{[]string{"--api-key", "k", "--bogus"}, "unknown flag --bogus; see identityd redact --help"},
	} {
		_, err := parseRedactFlags(tc.args)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}

func TestProgress_TerminalBar(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := &progress{w: &out, tty: true}
	job := &store.BulkRedaction{ID: "br_1", Status: store.BulkRunning, Matched: 10, Requested: 10, Redacted: 5}
	p.show(job)
	require.True(t, strings.HasPrefix(out.String(), "\r\033[K"), "the bar rewrites its line")
	require.Contains(t, out.String(), "running matching… matched 10 · requested 10 · redacted 5")
	job.Redacted, job.Status = 10, store.BulkCompleted
	p.show(job)
	p.end()
	require.Contains(t, out.String(), "100% 10/10 completed")
	require.True(t, strings.HasSuffix(out.String(), "\n"))
	require.Equal(t, 1, strings.Count(out.String(), "\n"), "one line, ended once")
}

// A job's walk requests sessions while earlier ones are already redacted, so `requested` grows as the job
// runs. The bar shows counts until the job is done, then one percentage: never 99% of 0/0, never a percentage
// that goes down.
func TestProgress_NoPercentageWhileTheTotalGrows(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := &progress{w: &out, tty: true}
	steps := []store.BulkRedaction{
		{Status: store.BulkQueued},
		{Status: store.BulkRunning},
		{Status: store.BulkRunning, Matched: 100, Requested: 100, Redacted: 100},
		{Status: store.BulkRunning, Matched: 300, Requested: 300, Redacted: 120},
		{Status: store.BulkRunning, Matched: 1000, Requested: 990, Redacted: 400, Skipped: store.BulkSkipped{AlreadyRedacted: 10}},
		{Status: store.BulkCompleted, Matched: 1000, Requested: 990, Redacted: 990, Skipped: store.BulkSkipped{AlreadyRedacted: 10}},
	}
	var pcts []string
	for i, job := range steps {
		job.ID = "br_1"
		out.Reset()
		p.show(&job)
		pct := regexp.MustCompile(`(\d+)%`).FindStringSubmatch(out.String())
		if !job.Done() {
			require.Nil(t, pct, "step %d shows no percentage while the total grows: %q", i, out.String())
			require.Contains(t, out.String(), "matching…", "step %d", i)
			continue
		}
		require.NotNil(t, pct, "step %d", i)
		pcts = append(pcts, pct[1])
	}
	require.Equal(t, []string{"100"}, pcts)
	require.Contains(t, out.String(), "990/990 completed")
}

func TestProgress_PlainLinesOnlyOnChange(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newProgress(&out)
	require.False(t, p.tty)
	job := &store.BulkRedaction{ID: "br_1", Status: store.BulkRunning, Matched: 3, Requested: 3}
	p.show(job)
	p.show(job)
	job.Redacted = 3
	p.show(job)
	require.Equal(t, 2, strings.Count(out.String(), "\n"))
	require.NotContains(t, out.String(), "\r")
}
