package main

import (
	"context"
	"errors"
	"io"
)

func cmdDemo(context.Context, []string, io.Writer, io.Writer) error {
	return exitError{code: exitFailed, err: errors.New("the demo is not built yet")}
}
