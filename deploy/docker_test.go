package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testenv"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
	Line int
}

// stage is one FROM ... section.
type stage struct {
	From, Name string
	Ins        []instruction
}

func parseDockerfile(t *testing.T, path string) (globalArgs map[string]string, stages []*stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	globalArgs = map[string]string{}
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.Join(strings.Fields(args), " "), Line: start}
		cur.Reset()
		switch {
		case in.Cmd == "FROM":
			from, name, _ := strings.Cut(in.Args, " AS ")
			if !strings.Contains(in.Args, " AS ") {
				from, name, _ = strings.Cut(in.Args, " as ")
			}
			stages = append(stages, &stage{From: strings.TrimSpace(from), Name: strings.TrimSpace(name)})
		case len(stages) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			globalArgs[k] = v
		case len(stages) == 0:
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.Line, in.Cmd)
		default:
			stages[len(stages)-1].Ins = append(stages[len(stages)-1].Ins, in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return globalArgs, stages
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Ins {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// exec form: a JSON array.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.Args), &v); err != nil {
		t.Fatalf("Dockerfile:%d: %s must be in exec form (a JSON array): %v", in.Line, in.Cmd, err)
	}
	return v
}

// goBuildRe finds the build command of the Dockerfile's RUN.
var goBuildRe = regexp.MustCompile(`CGO_ENABLED=0 go build [^&;]*`)

// TestDockerfile checks the Dockerfile's structure: a Go builder of the
// module's Go version, a static, trimmed build that stamps the version, and
// a small final image running the binary as a non-root user.
func TestDockerfile(t *testing.T) {
	root := testenv.RepoRoot()
	args, stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a builder and a final image", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// Builder: golang at the go.mod version.
	from := os.Expand(build.From, func(k string) string { return args[k] })
	if !strings.HasPrefix(from, "golang:") || build.Name == "" {
		t.Errorf("first stage FROM %q AS %q, want golang:<version> AS <name>", build.From, build.Name)
	}
	if want := goMinor(t, root); !strings.HasPrefix(strings.TrimPrefix(from, "golang:"), want) {
		t.Errorf("builder image %q, want Go %s as in go.mod", from, want)
	}
	var buildCmd string
	for _, in := range build.all("RUN") {
		if m := goBuildRe.FindString(in.Args); m != "" {
			buildCmd = m
		}
	}
	if buildCmd == "" {
		t.Fatal("no RUN with CGO_ENABLED=0 go build in the builder stage")
	}
	for _, want := range []string{"-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/dirsync", "-o /out/dirsync"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("build command %q lacks %q", buildCmd, want)
		}
	}

	// Final image: distroless static or scratch, binary at /dirsync.
	if !strings.HasPrefix(final.From, "gcr.io/distroless/static") && final.From != "scratch" {
		t.Errorf("final FROM %q, want distroless static or scratch", final.From)
	}
	var copied bool
	for _, in := range final.all("COPY") {
		if strings.Contains(in.Args, "--from="+build.Name) && strings.HasSuffix(in.Args, "/out/dirsync /dirsync") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s /out/dirsync /dirsync", build.Name)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("final stage has no USER: it would run as root")
	}
	user := users[len(users)-1].Args
	if u, _, _ := strings.Cut(user, ":"); u != "65532" {
		t.Errorf("USER %q, want 65532 (non-root, distroless nonroot)", user)
	}
	ep := final.all("ENTRYPOINT")
	if len(ep) != 1 || strings.Join(execForm(t, ep[0]), " ") != "/dirsync" {
		t.Errorf("ENTRYPOINT %v, want [\"/dirsync\"]", ep)
	}
	cmd := final.all("CMD")
	if len(cmd) != 1 || strings.Join(execForm(t, cmd[0]), " ") != "run --config /etc/dirsync/config.yaml" {
		t.Errorf("CMD %v, want [\"run\",\"--config\",\"/etc/dirsync/config.yaml\"]", cmd)
	}
	ex := final.all("EXPOSE")
	if len(ex) != 1 || ex[0].Args != "8080" {
		t.Errorf("EXPOSE %v, want 8080", ex)
	}
	for _, s := range stages {
		for _, in := range s.all("ADD") {
			t.Errorf("Dockerfile:%d: use COPY, not ADD", in.Line)
		}
	}
}

// goMinor returns "1.26" from go.mod's go directive.
func goMinor(t *testing.T, root string) string {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	return string(m[1])
}

// dockerignore reads .dockerignore patterns as regular expressions with
// Docker's rules: a leading / is dropped, ** spans folders, and a pattern
// that matches a folder excludes everything in it.
func dockerignore(t *testing.T, path string) []*regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*regexp.Regexp
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: exceptions (%s) are not supported by this test", line)
		}
		p := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(line, "/")))
		var re strings.Builder
		re.WriteString("^")
		for i, part := range strings.Split(p, "/") {
			if part == "**" {
				re.WriteString("(.*/)?")
				continue
			}
			if i > 0 && !strings.HasSuffix(re.String(), "(.*/)?") {
				re.WriteString("/")
			}
			for _, r := range part {
				switch r {
				case '*':
					re.WriteString("[^/]*")
				case '?':
					re.WriteString("[^/]")
				default:
					re.WriteString(regexp.QuoteMeta(string(r)))
				}
			}
		}
		re.WriteString("(/.*)?$")
		out = append(out, regexp.MustCompile(re.String()))
	}
	return out
}

func ignored(pats []*regexp.Regexp, rel string) bool {
	for _, p := range pats {
		if p.MatchString(rel) {
			return true
		}
	}
	return false
}

func TestDockerignorePatterns(t *testing.T) {
	pats := dockerignore(t, filepath.Join(testenv.RepoRoot(), ".dockerignore"))
	for rel, want := range map[string]bool{
		".git/HEAD": true, ".cache/x": true, "bench/results/a.json": true, "dirsync": true, "state.db": true,
		"config/testdata/valid.yaml": true, "config/config_test.go": true, "deploy/doc.go": true,
		"go.mod": false, "go.sum": false, "cmd/dirsync/main.go": false, "config/config.go": false,
		"source/filesrc/sample.yaml": false, "cmd/dirsync/dirsync.go": false, "README.md": false,
	} {
		if got := ignored(pats, rel); got != want {
			t.Errorf("%s ignored=%v, want %v", rel, got, want)
		}
	}
}

// TestDockerBuild does what the builder stage does, without Docker: copy
// the build context as .dockerignore leaves it, run the Dockerfile's own go
// build command in it (offline, from the module cache), and check that the
// result is a static binary that knows its version.
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := testenv.RepoRoot()
	_, stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	var buildCmd string
	for _, in := range stages[0].all("RUN") {
		if m := goBuildRe.FindString(in.Args); m != "" {
			buildCmd = m
		}
	}
	if buildCmd == "" {
		t.Fatal("no go build command in the Dockerfile")
	}
	ctxDir := t.TempDir()
	pats := dockerignore(t, filepath.Join(root, ".dockerignore"))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignored(pats, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctxDir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}

	const version = "v9.8.7-test"
	out := filepath.Join(t.TempDir(), "out")
	words := shellWords(strings.NewReplacer("${VERSION}", version, "/out/", out+"/").Replace(buildCmd))
	env := os.Environ()
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	env = append(env, "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off")
	c := exec.Command(words[0], words[1:]...)
	c.Dir, c.Env = ctxDir, env
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(words, " "), err, b)
	}
	bin := filepath.Join(out, "dirsync")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has an ELF interpreter: not static (CGO_ENABLED=0 lost?)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary links %v: not static", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: -s missing")
	}
	got, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(got), version) {
		t.Errorf("dirsync version: %v: %q, want it to print %s", err, got, version)
	}

	// The binary accepts the Kubernetes ConfigMap's config, plugin settings
	// included, with the Secret's keys in the environment.
	m := loadManifests(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(m.configMaps[0].Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	v := exec.Command(bin, "validate", "--config", cfgPath)
	v.Env = os.Environ()
	for k := range m.secrets[0].StringData {
		v.Env = append(v.Env, k+"=placeholder")
	}
	got, err = v.CombinedOutput()
	if err != nil {
		var problems []string
		for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n") {
			if strings.HasSuffix(l, ": invalid:") {
				continue
			}
			// A connector not registered yet is someone else's work in
			// progress, not a problem of the manifest.
			if strings.Contains(l, "unknown source type") || strings.Contains(l, "unknown target type") {
				t.Logf("not checked: %s", strings.TrimSpace(l))
				continue
			}
			problems = append(problems, l)
		}
		if len(problems) > 0 {
			t.Errorf("dirsync validate of the ConfigMap's config: %v\n%s", err, strings.Join(problems, "\n"))
		}
	}
}

// shellWords splits a command line with double-quoted words (enough for
// the Dockerfile's go build line).
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
