package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthcheckCommand is `identityd healthcheck`: it asks the local admin listener for /readyz and exits 0 on
// 200. Container images without a shell or curl (the distroless image in deploy/) use it as their health
// check; it reads the same --admin-addr / IDENTITYD_ADMIN_ADDR as the daemon, so one env file serves both.
type healthcheckCommand struct {
	url     string
	timeout time.Duration
}

// healthcheckFlags declares the flags of `identityd healthcheck`.
func healthcheckFlags(c *healthcheckCommand, addr, path *string) *flag.FlagSet {
	fs := flag.NewFlagSet("identityd healthcheck", flag.ContinueOnError)
	fs.StringVar(addr, "admin-addr", env("IDENTITYD_ADMIN_ADDR", "127.0.0.1:8081"), "the daemon's admin listener (env IDENTITYD_ADMIN_ADDR)")
	fs.StringVar(path, "path", pathReadyz, "path to ask: "+pathReadyz+" (ready) or "+pathHealthz+" (alive)")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Second, "give up after this long")
	return fs
}

// healthcheckHelp is the text of `identityd healthcheck --help`.
func healthcheckHelp() string {
	var b strings.Builder
	b.WriteString("usage: identityd healthcheck [flags]\n\nExits 0 when the local admin listener answers 200, 1 otherwise.\n\nFlags:\n")
	var addr, path string
	printFlags(&b, docsOf(healthcheckFlags(&healthcheckCommand{}, &addr, &path)))
	return b.String()
}

func parseHealthcheckFlags(args []string) (*healthcheckCommand, error) {
	c := &healthcheckCommand{}
	var addrFlag, pathFlag string
	addr, path := &addrFlag, &pathFlag
	if err := parseFlagSet(healthcheckFlags(c, addr, path), args, "identityd healthcheck"); err != nil {
		return nil, err
	}
	if *path != pathReadyz && *path != pathHealthz {
		return nil, fmt.Errorf("invalid --path %q: want %s or %s", *path, pathReadyz, pathHealthz)
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return nil, fmt.Errorf("invalid --admin-addr %q: want host:port", *addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // a daemon listening on every interface answers on loopback
	}
	c.url = "http://" + net.JoinHostPort(host, port) + *path
	return c, nil
}

func (c *healthcheckCommand) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", c.url, resp.StatusCode, body)
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}
