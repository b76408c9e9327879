package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/all"
	"github.com/dirsync/dirsync/ldapsrc"
	"github.com/dirsync/dirsync/scim"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/source/filesrc"
	"github.com/dirsync/dirsync/source/scimpull"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	"go.uber.org/zap"
)

// sourceFactories maps a source's config `type:` to its factory.
func sourceFactories() map[string]source.Factory {
	return map[string]source.Factory{
		"file":        filesrc.Factory,
		"ldap":        ldapsrc.Factory,
		scimpull.Type: scimpull.Factory,
		// "scim" is built by buildSource: it needs the state store.
	}
}

// buildSource builds one configured source.
func buildSource(cfg config.Source, deps source.Deps, store state.Store) (source.Source, error) {
	if cfg.Type == scim.Type {
		if store == nil {
			store = memstore.New(memstore.Options{}) // validate: settings only
		}
		s, err := scim.New(cfg, store, deps.Logger)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Path(), err)
		}
		return s, nil
	}
	f, ok := sourceFactories()[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("%s.type: unknown source type %q (known: %v)", cfg.Path(), cfg.Type, append(slices.Sorted(maps.Keys(sourceFactories())), scim.Type))
	}
	s, err := f(cfg, deps)
	if err != nil {
		if config.NamesKeysUnder(err, cfg.Path()) {
			return nil, err // the problems already name their keys
		}
		return nil, fmt.Errorf("%s (%s): %w", cfg.Path(), cfg.Name, err)
	}
	return s, nil
}

func sourceDepsNop() source.Deps { return source.Deps{Logger: zap.NewNop()} }

func buildTargetNop(tc config.Target) (connector.Connector, error) {
	return all.Build(tc, connector.Deps{Logger: zap.NewNop()})
}
