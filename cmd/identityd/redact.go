package main

import (
	"context"
	"errors"
	"io"
)

// redactCommand is `identityd redact` (bulk redaction through the API).
type redactCommand struct{}

func parseRedactFlags(args []string, stderr io.Writer) (*redactCommand, error) {
	return nil, errors.New("redact: not implemented yet")
}

func (c *redactCommand) run(ctx context.Context, stdout io.Writer) error {
	return errors.New("not implemented")
}
