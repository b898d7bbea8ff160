package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/identityd/identityd/store"
)

// redactCommand is `identityd redact`: it starts a bulk redaction through the API, follows its
// progress and exits 0 once the job completed with every requested session redacted.
type redactCommand struct {
	apiURL string
	apiKey string
	params url.Values
	dryRun bool
	poll   time.Duration
	client *http.Client
}

const redactUsage = `usage: identityd redact [flags]

Starts a bulk redaction of the sessions matching the filters (at least one), shows its progress and prints
the final counts. Exits 0 when the job completed, non-zero with the reason otherwise.

Flags:
`

// redactFlags declares the flags of `identityd redact` on c.
func redactFlags(c *redactCommand, f *redactFilter) *flag.FlagSet {
	fs := flag.NewFlagSet("identityd redact", flag.ContinueOnError)
	fs.StringVar(&c.apiURL, "api-url", "http://127.0.0.1:8080", "base URL of the identityd API")
	fs.StringVar(&c.apiKey, "api-key", "", "secret API key (env IDENTITYD_API_KEY)")
	fs.StringVar(&f.ref, "client-reference-id", "", "redact sessions with this client_reference_id")
	fs.StringVar(&f.status, "status", "", "redact sessions in this status: requires_input, processing, verified or canceled")
	fs.StringVar(&f.customer, "related-customer", "", "redact sessions with this related_customer")
	fs.StringVar(&f.gte, "created-gte", "", "redact sessions created at or after this `time` (unix seconds or RFC 3339)")
	fs.StringVar(&f.lte, "created-lte", "", "redact sessions created at or before this `time` (unix seconds or RFC 3339)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "count what would be redacted and change nothing")
	fs.DurationVar(&c.poll, "poll-interval", 500*time.Millisecond, "how often to poll the job's progress")
	return fs
}

// redactFilter holds the filter flags as given.
type redactFilter struct{ ref, status, customer, gte, lte string }

// redactHelp is the text of `identityd redact --help`.
func redactHelp() string {
	var b strings.Builder
	b.WriteString(redactUsage)
	printFlags(&b, docsOf(redactFlags(&redactCommand{}, &redactFilter{})))
	return b.String()
}

func parseRedactFlags(args []string) (*redactCommand, error) {
	c := &redactCommand{params: url.Values{}, client: &http.Client{Timeout: 30 * time.Second}}
	var f redactFilter
	if err := parseFlagSet(redactFlags(c, &f), args, "identityd redact"); err != nil {
		return nil, err
	}
	if c.apiKey == "" {
		c.apiKey = os.Getenv("IDENTITYD_API_KEY")
	}
	ref, status, customer, gte, lte := f.ref, f.status, f.customer, f.gte, f.lte
	u, err := url.Parse(c.apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid --api-url %q: want an http(s) URL", c.apiURL)
	}
	c.apiURL = strings.TrimRight(c.apiURL, "/")
	if c.apiKey == "" {
		return nil, errors.New("missing API key: pass --api-key or set IDENTITYD_API_KEY")
	}
	if c.poll <= 0 {
		return nil, errors.New("invalid --poll-interval: must be positive")
	}
	if status != "" {
		switch status {
		case store.StatusRequiresInput, store.StatusProcessing, store.StatusVerified, store.StatusCanceled:
		default:
			return nil, fmt.Errorf("invalid --status %q: want requires_input, processing, verified or canceled", status)
		}
	}
	for _, p := range []struct{ name, flag, value string }{
		{"client_reference_id", "client-reference-id", ref}, {"status", "status", status},
		{"related_customer", "related-customer", customer}, {"created[gte]", "created-gte", gte},
		{"created[lte]", "created-lte", lte}} {
		if p.value == "" {
			continue
		}
		v := p.value
		if strings.HasPrefix(p.name, "created") {
			t, err := parseTime(v)
			if err != nil {
				return nil, fmt.Errorf("invalid --%s %q: %w", p.flag, v, err)
			}
			v = strconv.FormatInt(t, 10)
		}
		c.params.Set(p.name, v)
	}
	if len(c.params) == 0 {
		return nil, errors.New("no filter: pass at least one of --client-reference-id, --status, --related-customer, --created-gte, --created-lte")
	}
	c.params.Set("dry_run", strconv.FormatBool(c.dryRun))
	return c, nil
}

// parseTime reads unix seconds or an RFC 3339 timestamp.
func parseTime(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("must not be negative")
		}
		return n, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, errors.New("want unix seconds or an RFC 3339 time such as 2024-01-31T00:00:00Z")
	}
	return t.Unix(), nil
}

func (c *redactCommand) run(ctx context.Context, stdout io.Writer) error {
	job, err := c.call(ctx, http.MethodPost, "/v1/identity/bulk_redactions", c.params)
	if err != nil {
		return fmt.Errorf("start bulk redaction: %w", err)
	}
	p := newProgress(stdout)
	mode := "bulk redaction"
	if job.DryRun {
		mode = "dry run"
	}
	fmt.Fprintf(stdout, "%s %s started (filter %s)\n", mode, job.ID, describeFilter(c.params))
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	for !job.Done() {
		p.show(job)
		select {
		case <-ctx.Done():
			p.end()
			return fmt.Errorf("interrupted; %s keeps running on the server (GET /v1/identity/bulk_redactions/%s)", job.ID, job.ID)
		case <-tick.C:
		}
		next, err := c.call(ctx, http.MethodGet, "/v1/identity/bulk_redactions/"+url.PathEscape(job.ID), nil)
		if err != nil {
			p.end()
			return fmt.Errorf("follow %s: %w", job.ID, err)
		}
		job = next
	}
	p.show(job)
	p.end()
	printCounts(stdout, job)
	switch {
	case job.Status == store.BulkFailed:
		return fmt.Errorf("bulk redaction %s failed: its walk could not finish; the sessions it requested are still redacted", job.ID)
	case job.Failed > 0:
		return fmt.Errorf("bulk redaction %s completed with %d failed redactions (the reconciler keeps retrying them)", job.ID, job.Failed)
	}
	return nil
}

// call sends one API request and decodes a bulk redaction or a Stripe-shaped error.
func (c *redactCommand) call(ctx context.Context, method, path string, form url.Values) (*store.BulkRedaction, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.apiURL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", store.NewID("cli"))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			msg := e.Error.Message
			if e.Error.Code != "" {
				msg = e.Error.Code + ": " + msg
			}
			return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
		}
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var job store.BulkRedaction
	if err := json.Unmarshal(raw, &job); err != nil || job.ID == "" {
		return nil, fmt.Errorf("unexpected response from %s (is --api-url an identityd API?)", c.apiURL)
	}
	return &job, nil
}

func describeFilter(params url.Values) string {
	var parts []string
	for _, k := range []string{"client_reference_id", "status", "related_customer", "created[gte]", "created[lte]"} {
		if v := params.Get(k); v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

func printCounts(w io.Writer, job *store.BulkRedaction) {
	type row struct {
		label string
		n     int64
	}
	rows := []row{{"matched", job.Matched}, {"requested", job.Requested}}
	if job.DryRun {
		rows[1].label = "would request"
	} else {
		rows = append(rows, row{"redacted", job.Redacted}, row{"failed", job.Failed})
	}
	rows = append(rows, row{"skipped (processing)", job.Skipped.Processing},
		row{"skipped (already redacted)", job.Skipped.AlreadyRedacted})
	fmt.Fprintf(w, "%s %s\n", job.ID, job.Status)
	for _, r := range rows {
		fmt.Fprintf(w, "  %-27s %d\n", r.label, r.n)
	}
}

// progress rewrites one line on a terminal (the running counts, then a bar once the job is done and its total
// known), and prints a plain line per change otherwise.
type progress struct {
	w    io.Writer
	tty  bool
	last string
	drew bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) show(job *store.BulkRedaction) {
	done, total := job.Redacted+job.Failed, job.Requested
	if job.DryRun {
		done = total
	}
	line := fmt.Sprintf("%s matched=%d requested=%d redacted=%d failed=%d skipped_processing=%d skipped_already_redacted=%d",
		job.Status, job.Matched, job.Requested, job.Redacted, job.Failed, job.Skipped.Processing, job.Skipped.AlreadyRedacted)
	if !p.tty {
		if line != p.last {
			fmt.Fprintf(p.w, "%s %s\n", job.ID, line)
			p.last = line
		}
		return
	}
	const width = 30
	if !job.Done() {
		// While the job runs its walk may still be matching sessions, so `requested` is not yet the total: a
		// fraction of it would start at 0/0 and fall as the walk goes on. Show the counts until the job is done.
		fmt.Fprintf(p.w, "\r\033[K%s matching… matched %d · requested %d · redacted %d · failed %d · skipped %d", job.Status,
			job.Matched, job.Requested, job.Redacted, job.Failed, job.Skipped.Processing+job.Skipped.AlreadyRedacted)
		p.drew = true
		return
	}
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	fmt.Fprintf(p.w, "\r\033[K%s %3.0f%% %d/%d %s · matched %d · skipped %d", bar, frac*100, done, total, job.Status,
		job.Matched, job.Skipped.Processing+job.Skipped.AlreadyRedacted)
	p.drew = true
}

func (p *progress) end() {
	if p.tty && p.drew {
		fmt.Fprintln(p.w)
		p.drew = false
	}
}
