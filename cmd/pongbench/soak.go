package main

import (
	"context"
	"errors"
	"io"
)

func runSoak(ctx context.Context, o *options, log io.Writer) (any, error) {
	return nil, errors.New("soak: not implemented yet")
}
