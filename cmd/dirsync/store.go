package main

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"go.uber.org/zap"
)

// openStore opens the configured state backend.
func openStore(_ context.Context, c config.State, _ *zap.Logger) (state.Store, error) {
	switch c.Backend {
	case "embedded":
		s, err := bolt.Open(c.Path, bolt.Options{JournalSize: c.JournalSize})
		if err != nil {
			return nil, fmt.Errorf("state.path: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("state.backend: %q is not available in this build yet", c.Backend)
	}
}
