// Package backends opens the state.Store the configuration names: the
// embedded bbolt file or Redis.
package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/redisstore"
)

// PingTimeout bounds the first Redis ping when ctx has no deadline.
const PingTimeout = 10 * time.Second

// Open opens the configured backend: "embedded" (the default) or "redis".
// A Redis store is pinged before Open returns. Errors name the config key
// at fault (e.g. "state.redis.addrs: ...") and never contain the password.
func Open(ctx context.Context, cfg config.State, logger *zap.Logger) (state.Store, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	switch cfg.Backend {
	case "", "embedded":
		path := cfg.Path
		if path == "" {
			path = "dirsync.db"
		}
		s, err := bolt.Open(path, bolt.Options{JournalSize: cfg.JournalSize})
		if err != nil {
			return nil, fmt.Errorf("state.path: %w", err)
		}
		logger.Info("state: embedded store opened", zap.String("path", path), zap.Int("journal_size", journalSize(cfg)))
		return s, nil
	case "redis":
		return openRedis(ctx, cfg, logger)
	default:
		return nil, fmt.Errorf("state.backend: must be embedded or redis (got %q)", cfg.Backend)
	}
}

func journalSize(cfg config.State) int {
	if cfg.JournalSize > 0 {
		return cfg.JournalSize
	}
	return bolt.DefaultJournalSize
}

func openRedis(ctx context.Context, cfg config.State, logger *zap.Logger) (state.Store, error) {
	r := cfg.Redis
	s, err := redisstore.New(r, redisstore.Options{JournalSize: cfg.JournalSize, PerTarget: cfg.Leases == config.LeasesPerTarget})
	if err != nil {
		var ce *redisstore.ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("state.redis.%s: %w", ce.Key, ce.Err)
		}
		return nil, fmt.Errorf("state.redis: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, PingTimeout)
		defer cancel()
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		err = scrub(err, r.Password)
		if isAuthError(err) {
			return nil, fmt.Errorf("state.redis.password: authentication failed (check username and password): %w", err)
		}
		return nil, fmt.Errorf("state.redis.addrs: %w", err)
	}
	mode := "standalone"
	switch {
	case r.MasterName != "":
		mode = "sentinel"
	case len(r.Addrs) > 1:
		mode = "cluster"
	}
	logger.Info("state: redis store opened",
		zap.Strings("addrs", r.Addrs), zap.String("mode", mode), zap.Int("db", r.DB),
		zap.String("key_prefix", r.KeyPrefix), zap.Bool("tls", r.TLS.Enabled),
		zap.Bool("auth", !r.Password.IsZero()), zap.Int("journal_size", journalSize(cfg)))
	return s, nil
}

func isAuthError(err error) bool {
	msg := err.Error()
	for _, m := range []string{"WRONGPASS", "NOAUTH", "invalid password", "invalid username-password", "AUTH"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// scrubbed is an error whose text had the password removed.
type scrubbed struct {
	msg string
	err error
}

func (e scrubbed) Error() string { return e.msg }
func (e scrubbed) Unwrap() error { return e.err }

// scrub removes the password from an error's text, defensively: no client
// error is known to contain it.
func scrub(err error, pw config.Secret) error {
	if pw.IsZero() || !strings.Contains(err.Error(), pw.Value()) {
		return err
	}
	return scrubbed{msg: strings.ReplaceAll(err.Error(), pw.Value(), config.Redacted), err: err}
}
