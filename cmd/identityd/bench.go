package main

import (
	"context"
	"errors"
	"io"
)

// benchCommand is `identityd bench` (built-in load generator).
type benchCommand struct{}

func parseBenchFlags(args []string, stderr io.Writer) (*benchCommand, error) {
	return nil, errors.New("bench: not implemented yet")
}

func (c *benchCommand) run(ctx context.Context, stdout io.Writer) error {
	return errors.New("not implemented")
}
