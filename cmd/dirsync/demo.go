package main

import (
	"context"
	"io"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return exitError{code: exitFailed, err: errNoDemo}
}

var errNoDemo = errorString("the demo is not built yet")

type errorString string

func (e errorString) Error() string { return string(e) }
