package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/backends"
	"go.uber.org/zap"
)

// One deployment, one writer per application. Replicas of one deployment
// share a state store and its leader lock, so only one of them applies. Two
// deployments with their own state (another key prefix, another Redis) do
// not see each other's lock: both would apply to the same application, each
// from its own idea of what it applied. Where they share a Redis, each
// registers the endpoints it writes to outside its prefix
// (state.EndpointRegistry), and the daemon (/readyz, an error log line) and
// `dirsync validate` warn about the other. Deployments on different Redis
// servers, or on embedded stores, cannot see each other: nothing detects them.

// endpointsOf returns the application endpoints the configured targets
// write to (endpoint → target name).
func endpointsOf(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, t := range cfg.Targets {
		if ep := t.Endpoint(); ep != "" {
			out[ep] = t.Name
		}
	}
	return out
}

// writerWarnings describes other deployments writing to this one's
// applications, one line each ("" when none or the store cannot tell).
func writerWarnings(ctx context.Context, st state.Store, cfg *config.Config) ([]string, error) {
	reg, ok := st.(state.EndpointRegistry)
	if !ok {
		return nil, nil
	}
	claims, err := reg.EndpointClaims(ctx)
	if err != nil {
		return nil, err
	}
	mine := endpointsOf(cfg)
	var out []string
	for _, c := range state.OtherWriters(claims, reg.Deployment(), mine) {
		out = append(out, fmt.Sprintf("target %s: another dirsync deployment (key_prefix %q, its target %s) also writes to %s: two writers with separate state undo each other's changes; run one deployment per application",
			mine[c.Endpoint], c.Deployment, c.Target, c.Endpoint))
	}
	return out, nil
}

// sharedEndpointWarnings are targets of this configuration that write to
// the same application.
func sharedEndpointWarnings(cfg *config.Config) []string {
	var out []string
	for ep, names := range cfg.SharedEndpoints() {
		out = append(out, fmt.Sprintf("targets %s all write to %s: one application, several targets undo each other's changes", strings.Join(names, ", "), ep))
	}
	slices.Sort(out)
	return out
}

// claimEndpoints registers this deployment's endpoints every interval
// until ctx ends, and keeps the warning about other writers current.
func (d *daemon) claimEndpoints(ctx context.Context, interval time.Duration) {
	reg, ok := d.a.store.(state.EndpointRegistry)
	mine := endpointsOf(d.a.cfg)
	if !ok || len(mine) == 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := reg.ClaimEndpoints(ctx, mine, 3*interval); err != nil {
			d.log.Warn("register this deployment's application endpoints", zap.Error(err))
		} else if ws, err := writerWarnings(ctx, d.a.store, d.a.cfg); err == nil {
			now := strings.Join(ws, "\n")
			d.writers.Store(&now)
			if now != last && now != "" {
				for _, w := range ws {
					d.log.Error("two writers to one application", zap.String("warning", w))
				}
			}
			last = now
		}
		t.Reset(interval)
	}
}

// otherDeploymentWarnings asks a shared state store (Redis) which other
// deployments write to this configuration's applications, for `validate`.
// It registers nothing.
func otherDeploymentWarnings(ctx context.Context, cfg *config.Config) []string {
	if cfg.State.Backend != "redis" || len(endpointsOf(cfg)) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := backends.Open(ctx, cfg.State, nil)
	if err != nil {
		return []string{"could not check for other deployments writing to the same applications: " + err.Error()}
	}
	defer st.Close()
	ws, err := writerWarnings(ctx, st, cfg)
	if err != nil {
		return []string{"could not check for other deployments writing to the same applications: " + err.Error()}
	}
	return ws
}
