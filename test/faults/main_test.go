package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testenv"
)

// bins are the programs TestMain builds once per test run; read-only after.
var bins struct {
	dirsync string // the dirsync binary under test
	ezwapi  string // the Ezeelogin API client fake (ezwapi-fake)
}

// TestMain builds the dirsync binary and the ezwapi-fake program once, so
// every test runs the real binary as a separate process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dirsync-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	bins.dirsync = filepath.Join(dir, "dirsync")
	bins.ezwapi = filepath.Join(dir, "ezwapi-fake")
	for out, pkg := range map[string]string{
		bins.dirsync: "./cmd/dirsync",
		bins.ezwapi:  "./connector/ezeelogin/ezeeloginfake/cmd/ezwapi-fake",
	} {
		cmd := exec.Command(goTool(), "build", "-o", out, pkg)
		cmd.Dir = testenv.RepoRoot()
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: go build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// long reports whether the long form is asked for (DIRSYNC_FAULTS_LONG=1).
func long() bool { return os.Getenv("DIRSYNC_FAULTS_LONG") == "1" }

// pick returns short in the short form and long in the long form.
func pick(short, longer int) int {
	if long() {
		return longer
	}
	return short
}

// resultsMu serialises appends to the results file.
var resultsMu sync.Mutex

// result records one row of the results table: the item, how many trials,
// and the figures measured. Pass or fail is taken from t when the test
// ends. Rows go to the file named by DIRSYNC_FAULTS_RESULTS (tab-separated;
// scripts/faults-long.sh turns them into a table) and to the test log.
func result(t *testing.T, item string, trials int, figures ...string) {
	t.Helper()
	fig := strings.Join(figures, "; ")
	t.Logf("RESULT %s | trials %d | %s", item, trials, fig)
	if os.Getenv("DIRSYNC_FAULTS_RESULTS") == "" {
		return
	}
	t.Cleanup(func() {
		status := "pass"
		if t.Failed() {
			status = "FAIL"
		} else if t.Skipped() {
			status = "skipped"
		}
		writeRow(t, item, t.Name(), trials, status, fig)
	})
}

// writeRow appends one row to the results file, if there is one.
func writeRow(t *testing.T, item, name string, trials int, status, fig string) {
	path := os.Getenv("DIRSYNC_FAULTS_RESULTS")
	if path == "" {
		return
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("results file: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\t%s\t%d\t%s\t%s\n", item, name, trials, status, strings.ReplaceAll(fig, "\t", " "))
}

// tally gathers figures over trials: durations (shown as min–max) and
// counts (shown as totals), in the order first added.
type tally struct {
	mu     sync.Mutex
	order  []string
	durs   map[string][]time.Duration
	counts map[string]int
}

func (a *tally) note(name string) {
	if a.durs == nil {
		a.durs, a.counts = map[string][]time.Duration{}, map[string]int{}
	}
	if _, ok := a.durs[name]; ok {
		return
	}
	if _, ok := a.counts[name]; ok {
		return
	}
	a.order = append(a.order, name)
}

// dur records one duration.
func (a *tally) dur(name string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.note(name)
	a.durs[name] = append(a.durs[name], d)
}

// add adds to a count.
func (a *tally) add(name string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.note(name)
	if _, ok := a.durs[name]; !ok {
		a.counts[name] += n
	}
}

// figures renders each figure.
func (a *tally) figures() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, n := range a.order {
		if ds, ok := a.durs[n]; ok {
			lo, hi := slices.Min(ds), slices.Max(ds)
			if lo == hi {
				out = append(out, fmt.Sprintf("%s %s", n, lo.Round(100*time.Millisecond)))
			} else {
				out = append(out, fmt.Sprintf("%s %s–%s", n, lo.Round(100*time.Millisecond), hi.Round(100*time.Millisecond)))
			}
			continue
		}
		out = append(out, fmt.Sprintf("%s: %d", n, a.counts[n]))
	}
	return out
}
