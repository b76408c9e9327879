package repotest

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testenv"
)

// TestRepo applies the rules to this repository.
func TestRepo(t *testing.T) {
	root := testenv.RepoRoot()
	mod, err := Module(root)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	for _, p := range Check(mod, pkgs) {
		t.Error(p)
	}
}

// TestRules: the checker finds each kind of violation in a small fake
// repository, and nothing else.
func TestRules(t *testing.T) {
	root := fixture(t, "testdata/repo")
	mod, err := Module(root)
	if err != nil {
		t.Fatal(err)
	}
	if mod != "example.com/fake" {
		t.Fatalf("module %q", mod)
	}
	pkgs, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, p := range pkgs {
		dirs = append(dirs, p.Dir)
	}
	if want := []string{"cmd/tool", "cmd/tool/internal/flags", "config", "identity", "identity/sub", "lib", "nodoc"}; !slices.Equal(dirs, want) {
		t.Errorf("packages %q, want %q (testdata, hidden and _ folders skipped)", dirs, want)
	}
	got := Check(mod, pkgs)
	want := []string{
		`config/config.go:5: imports example.com/fake/lib: config/ must import nothing of ours`,
		`identity/identity.go:6: imports example.com/fake/config: identity/ must import nothing of ours`,
		`identity/sub/sub.go:5: imports example.com/fake/config: identity/ must import nothing of ours`,
		`lib/lib_test.go:3: imports example.com/fake/cmd/tool: nothing outside cmd/ may import the cmd tree`,
		`nodoc: package nodoc has no package doc comment (add "// Package nodoc ..." above the package clause of one file)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadRejectsMixedPackages(t *testing.T) {
	if _, err := Load(fixture(t, "testdata/mixed")); err == nil || !strings.Contains(err.Error(), "package b, but other files in . are package a") {
		t.Errorf("Load = %v", err)
	}
}

// fixture copies a fake repository to a temporary folder, renaming its
// *.gotxt files to *.go (they are stored under another name so that gofmt
// and the go tool leave the deliberately broken ones alone).
func fixture(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, strings.TrimSuffix(rel, "txt"))
		if !strings.HasSuffix(rel, ".gotxt") {
			target = filepath.Join(dst, rel)
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
