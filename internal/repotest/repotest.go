// Package repotest checks repository-wide rules that no single package can
// check for itself: every library package has a doc comment, identity and
// config import nothing of ours, and nothing imports the cmd tree.
package repotest

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Module reads the module path from root/go.mod.
func Module(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("repotest: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`), nil
		}
	}
	return "", fmt.Errorf("repotest: no module line in %s", filepath.Join(root, "go.mod"))
}

// Package is what the rules need to know about one Go package (one folder,
// test files included).
type Package struct {
	Dir     string // slash-separated, relative to the root ("." for the root)
	Name    string // the package name of its non-test files ("" if none)
	HasDoc  bool   // some non-test file has a package doc comment
	Imports []Import
}

// Import is one import of a file.
type Import struct {
	Path string
	File string // relative to the root
	Line int
	Test bool // from a _test.go file
}

// skipDir reports folders the go tool ignores too, plus tool caches.
func skipDir(name string) bool {
	return name == "testdata" || name == "vendor" || name == "node_modules" ||
		strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// Load parses the package clause, doc comment and imports of every Go file
// under root (bodies are not parsed, so half-written code elsewhere does not
// matter).
func Load(root string) ([]Package, error) {
	byDir := map[string]*Package{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return fmt.Errorf("repotest: %w", err)
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		p := byDir[dir]
		if p == nil {
			p = &Package{Dir: dir}
			byDir[dir] = p
		}
		test := strings.HasSuffix(path, "_test.go")
		if !test {
			if p.Name != "" && p.Name != f.Name.Name {
				return fmt.Errorf("repotest: %s: package %s, but other files in %s are package %s", rel, f.Name.Name, dir, p.Name)
			}
			p.Name = f.Name.Name
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				p.HasDoc = true
			}
		}
		for _, is := range f.Imports {
			ip, _ := strconv.Unquote(is.Path.Value)
			p.Imports = append(p.Imports, Import{Path: ip, File: rel, Line: fset.Position(is.Pos()).Line, Test: test})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(byDir))
	for _, p := range byDir {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out, nil
}

// under reports whether dir is prefix or inside it.
func under(dir, prefix string) bool {
	return dir == prefix || strings.HasPrefix(dir, prefix+"/")
}

// leaves are packages that import nothing of this module (outside tests).
var leaves = []string{"identity", "config"}

// Check applies the rules to the packages of module and returns one line per
// violation.
func Check(module string, pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		if p.Name != "" && p.Name != "main" && !p.HasDoc {
			out = append(out, fmt.Sprintf("%s: package %s has no package doc comment (add \"// Package %s ...\" above the package clause of one file)", p.Dir, p.Name, p.Name))
		}
		for _, im := range p.Imports {
			ours := im.Path == module || strings.HasPrefix(im.Path, module+"/")
			if !ours {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(im.Path, module), "/")
			if under(rel, "cmd") && !under(p.Dir, "cmd") {
				out = append(out, fmt.Sprintf("%s:%d: imports %s: nothing outside cmd/ may import the cmd tree", im.File, im.Line, im.Path))
			}
			if im.Test {
				continue
			}
			for _, leaf := range leaves {
				if under(p.Dir, leaf) && !under(rel, leaf) {
					out = append(out, fmt.Sprintf("%s:%d: imports %s: %s/ must import nothing of ours", im.File, im.Line, im.Path, leaf))
				}
			}
		}
	}
	return out
}
