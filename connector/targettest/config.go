package targettest

import (
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
)

// ParseTargets parses yaml as the targets list of a config with one memory
// source, as the config loader does.
func ParseTargets(t testing.TB, yaml string) []config.Target {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader("sources: [{name: hr, type: memory}]\ntargets:\n" + yaml))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, yaml)
	}
	return cfg.Targets
}
