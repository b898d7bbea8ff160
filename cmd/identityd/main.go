// Command identityd is a self-hosted, Stripe-compatible Identity VerificationSession service with an
// asynchronous redaction worker. Run `identityd -h` for the subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run())
}

// run returns the process's exit code, so its deferred calls have run before main exits.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(os.Stdout, os.Stderr)
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "identityd:", err)
		return 2
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "identityd:", err)
		_ = m.Close() // the run's error is the one to report
		return 1
	}
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "identityd:", err)
		return 1
	}
	return 0
}
