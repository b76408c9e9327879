// Package all is the one map from a target's config `type:` to the factory
// of its connector. Only cmd imports it.
package all

import (
	"fmt"
	"maps"
	"slices"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/allthenticate"
	"github.com/dirsync/dirsync/target/ezeelogin"
	"github.com/dirsync/dirsync/target/ezeep"
	"github.com/dirsync/dirsync/target/memtarget"
	"github.com/dirsync/dirsync/target/netmaker"
	"github.com/dirsync/dirsync/target/scimclient"
)

// Factories maps type names to connector factories.
func Factories() map[string]target.Factory {
	return map[string]target.Factory{
		"memory":        memtarget.Factory,
		"allthenticate": allthenticate.Factory,
		"ezeep":         ezeep.Factory,
		"ezeelogin":     ezeelogin.Factory,
		"netmaker":      netmaker.Factory,
		"scim":          scimclient.Factory,
	}
}

// Samples maps type names to each connector's documented YAML sample.
func Samples() map[string]string {
	return map[string]string{
		"allthenticate": allthenticate.Sample,
		"ezeep":         ezeep.Sample,
		"ezeelogin":     ezeelogin.Sample,
		"netmaker":      netmaker.Sample,
		"scim":          scimclient.Sample,
	}
}

// Build builds the connector for cfg.
func Build(cfg config.Target, deps target.Deps) (target.Target, error) {
	f, ok := Factories()[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("%s.type: unknown target type %q (known: %v)", cfg.Path(), cfg.Type, slices.Sorted(maps.Keys(Factories())))
	}
	t, err := f(cfg, deps)
	if err != nil {
		if config.NamesKeysUnder(err, cfg.Path()) {
			return nil, err // the problems already name their keys
		}
		return nil, fmt.Errorf("%s (%s): %w", cfg.Path(), cfg.Name, err)
	}
	return t, nil
}
