package main

import (
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/all"
	"github.com/dirsync/dirsync/ldapsrc"
	"github.com/dirsync/dirsync/scim"
	"github.com/dirsync/dirsync/source/filesrc"
	"github.com/dirsync/dirsync/source/scimpull"
)

var update = flag.Bool("update", false, "rewrite config.example.yaml from the samples")

// sourceSamples are the documented samples of every source type.
func sourceSamples() map[string]string {
	return map[string]string{"file": filesrc.Sample, "ldap": ldapsrc.Sample, "scim": scim.Sample, scimpull.Type: scimpull.Sample}
}

// reindent puts a sample's list item at two spaces, whatever its own indent.
func reindent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	minIndent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if minIndent < 0 || n < minIndent {
			minIndent = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("  " + l[minIndent:] + "\n")
	}
	return b.String()
}

func exampleConfig(t *testing.T) string {
	head, err := os.ReadFile("testdata/example-head.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(head)
	b.WriteString("\nsources:\n")
	ss := sourceSamples()
	for _, k := range sortedKeys(ss) {
		b.WriteString("\n" + reindent(ss[k]))
	}
	b.WriteString("\ntargets:\n")
	b.WriteString("\n  # A target that keeps accounts in a JSON file: for trying rules out.\n  - name: scratch\n    type: memory\n    path: /tmp/dirsync-scratch.json\n    scope: [staff]\n")
	ts := all.Samples()
	for _, k := range sortedKeys(ts) {
		b.WriteString("\n" + reindent(ts[k]))
	}
	return b.String()
}

// config.example.yaml holds every connector's sample, parses, validates,
// and every source and target in it builds.
func TestExampleConfig(t *testing.T) {
	want := exampleConfig(t)
	if *update {
		if err := os.WriteFile("../../config.example.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("config.example.yaml is out of date: go test ./cmd/dirsync -run TestExampleConfig -update")
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(want, -1) {
		t.Setenv(m[1], "example-"+strings.ToLower(m[1]))
	}
	cfg, err := config.Parse(strings.NewReader(want))
	if err != nil {
		t.Fatalf("config.example.yaml does not parse:\n%v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.example.yaml does not validate:\n%v", err)
	}
	for _, sc := range cfg.Sources {
		if _, err := buildSource(sc, sourceDepsNop(), nil); err != nil {
			t.Errorf("source sample %s: %v", sc.Name, err)
		}
	}
	var types []string
	for _, tc := range cfg.Targets {
		types = append(types, tc.Type)
		if _, err := buildTargetNop(tc); err != nil {
			t.Errorf("target sample %s: %v", tc.Name, err)
		}
	}
	for typ := range all.Factories() {
		if !slices.Contains(types, typ) {
			t.Errorf("no sample of target type %q in config.example.yaml", typ)
		}
	}
}
