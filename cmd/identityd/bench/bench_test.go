package bench

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store/storetest"
)

// TestBench_SmallRun runs `identityd bench` end to end on a small store: every row of the table is printed with a
// positive figure (the redaction runs finished every session, the I/O floor moved every session it was given),
// and the run removes every key it wrote.
func TestBench_SmallRun(t *testing.T) {
	r := storetest.New(t)
	var stderr bytes.Buffer
	c, err := ParseFlags([]string{"--redis-url", r.URL, "--sessions", "200", "--redactions", "40",
		"--noop-tasks", "200", "--concurrency", "4", "--list-clients", "4", "--list-duration", "300ms",
		"--read-clients", "2", "--read-duration", "300ms"}, &stderr)
	require.NoError(t, err, stderr.String())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, c.Run(ctx, &out))
	table := out.String()
	for _, row := range []string{`\(a\) asynq no-op tasks/s`, `\(b\) single-session redactions/s`,
		`\(c\) bulk redaction sessions/s`, `\(c\) Redis I/O floor sessions/s`, `\(d\) list req/s at 20 sessions`,
		`\(d\) list req/s at 200 sessions`, `\(e\) Redis bytes per verified session`, `\(e\) Redis bytes per list call`} {
		m := regexp.MustCompile(`(?m)^` + row + `\s+(\d+)\s`).FindStringSubmatch(table)
		require.NotNil(t, m, "row %s missing from:\n%s", row, table)
		v, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.Positive(t, v, row)
	}
	require.Regexp(t, `floor/\(a\) = \d+\.\d\d`, table)
	require.Regexp(t, `(?m)^\(e\) redaction read ÷ unread\s+\d+\.\d\d\s+the worker's redaction, median of 10 each`, table)
	left, err := r.Client.Keys(context.Background(), "bench*").Result()
	require.NoError(t, err)
	require.Empty(t, left, "the run's keys are removed; left: %v", left[:min(len(left), 5)])
}
