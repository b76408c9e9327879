package faults

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/internal/testenv"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/redisstore"
)

// harness is one scenario's world: a temporary folder, the secrets every
// output is scanned for, the dirsync processes it started, and the outputs
// it captured (CLI output, HTTP bodies) for the secret scan.
type harness struct {
	t   *testing.T
	dir string
	env []string // extra environment for every dirsync process (secrets)

	mu      sync.Mutex
	secrets map[string]string // value → what it is
	outputs map[string]*bytes.Buffer
	procs   []*proc
	redis   *redissrv.Server
	store   *redisstore.Store
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return &harness{t: t, dir: t.TempDir(), secrets: map[string]string{}, outputs: map[string]*bytes.Buffer{}}
}

// secret makes up a secret value for what, registers it for the leak scan,
// and exports it to dirsync processes as the environment variable env.
func (h *harness) secret(what, env string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	v := strings.ReplaceAll(what, " ", "-") + "-S3cr3t-" + hex.EncodeToString(b)
	h.addSecret(what, v)
	if env != "" {
		h.env = append(h.env, env+"="+v)
	}
	return v
}

// addSecret registers a secret made elsewhere (a token a fake issued, a
// password an application returned).
func (h *harness) addSecret(what, v string) {
	if v == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets[v] = what
}

// capture keeps text for the secret scan under a name.
func (h *harness) capture(name, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.outputs[name]
	if !ok {
		b = &bytes.Buffer{}
		h.outputs[name] = b
	}
	b.WriteString(text)
	b.WriteByte('\n')
}

// path returns a path in the scenario's folder.
func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

// writeFile writes a file atomically (temp file and rename), so a process
// reading it never sees half of it.
func (h *harness) writeFile(name string, b []byte) string {
	h.t.Helper()
	p := h.path(name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// startRedis starts a password-protected redis-server (AOF on when aof),
// and opens a Store on it for the test's own reads.
func (h *harness) startRedis(aof bool) *redissrv.Server {
	h.t.Helper()
	pw := h.secret("redis password", "REDIS_PASSWORD")
	h.redis = redissrv.Start(h.t, redissrv.Options{AppendOnly: aof, Password: pw})
	s, err := redisstore.New(config.Redis{Addrs: []string{h.redis.Addr()}, Password: config.NewSecret(pw), KeyPrefix: "dirsync:"},
		redisstore.Options{DialTimeout: time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = s
	h.t.Cleanup(func() { _ = s.Close() })
	return h.redis
}

// stateYAML is the state section for the harness's Redis.
func (h *harness) stateYAML(lockTTL string) string {
	return fmt.Sprintf(`state:
  backend: redis
  lock_ttl: %s
  redis:
    addrs: [%q]
    password: ${REDIS_PASSWORD}
    key_prefix: "dirsync:"
`, lockTTL, h.redis.Addr())
}

// runs returns the run records, newest first.
func (h *harness) runs() []state.Run {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := h.store.Runs(ctx, 0)
	if err != nil {
		h.t.Fatalf("read runs: %v", err)
	}
	return rs
}

// waitRun waits for a finished run, started after since, for which ok
// returns true, and returns it.
func (h *harness) waitRun(since time.Time, within time.Duration, ok func(state.Run) bool) state.Run {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		rs := h.runs()
		for i := len(rs) - 1; i >= 0; i-- { // oldest first
			r := rs[i]
			if r.Started.After(since) && r.Status != "running" && ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			var sum []string
			for _, r := range h.runs() {
				sum = append(sum, fmt.Sprintf("%s %s %s %v %s", r.ID, r.Trigger, r.Status, r.Counts, r.Error))
			}
			h.t.Fatalf("no matching run after %s within %s; runs:\n%s", since.Format(time.RFC3339Nano), within, strings.Join(sum, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// okRun matches a run that finished with status ok.
func okRun(r state.Run) bool { return r.Status == "ok" }

// checkSecrets scans everything a secret could leak into: every log line
// of every dirsync process, the captured CLI outputs and HTTP bodies, the
// metrics of live daemons, and every key and value in Redis (journal,
// runs, held plans, accounts, snapshots).
func (h *harness) checkSecrets() {
	h.t.Helper()
	for _, p := range h.procs {
		if p.Alive() {
			if code, body := p.get("/metrics"); code == 200 {
				h.capture(p.name+" /metrics", body)
			}
			if _, body := p.get("/readyz"); body != "" {
				h.capture(p.name+" /readyz", body)
			}
		}
	}
	blobs := map[string]string{}
	for _, p := range h.procs {
		b, _ := os.ReadFile(p.logPath)
		blobs[p.name+" log"] = string(b)
	}
	h.mu.Lock()
	for n, b := range h.outputs {
		blobs[n] = b.String()
	}
	secrets := make(map[string]string, len(h.secrets))
	for k, v := range h.secrets {
		secrets[k] = v
	}
	h.mu.Unlock()
	if h.redis != nil && h.store != nil {
		if dump, err := h.dumpRedis(); err == nil {
			blobs["redis keys and values"] = dump
		} else {
			h.t.Logf("secret scan: Redis not dumped: %v", err)
		}
	}
	if len(secrets) == 0 {
		h.t.Fatal("secret scan: no secrets registered")
	}
	scanned, leaks := 0, 0
	for name, text := range blobs {
		scanned += len(text)
		for v, what := range secrets {
			if strings.Contains(text, v) {
				leaks++
				i := strings.Index(text, v)
				lo, hi := max(i-200, 0), min(i+len(v)+100, len(text))
				h.t.Errorf("SECRET LEAK: the %s appears in %s: …%s…", what, name, text[lo:hi])
			}
		}
	}
	if scanned == 0 {
		h.t.Fatal("secret scan: nothing to scan")
	}
	kinds := map[string]int{}
	for _, what := range secrets {
		kinds[what]++
	}
	names := make([]string, 0, len(blobs))
	for n := range blobs {
		names = append(names, n)
	}
	sort.Strings(names)
	status := "pass"
	if leaks > 0 {
		status = "FAIL"
	}
	fig := fmt.Sprintf("%d secrets (%s) in %d outputs (%s), %d bytes: %d leaks", len(secrets), summary(kinds), len(blobs), strings.Join(names, ", "), scanned, leaks)
	h.t.Logf("secret scan: %s", fig)
	writeRow(h.t, "7 secrets", h.t.Name(), 1, status, fig)
}

// dumpRedis renders every key with its value (strings, hashes, streams,
// sorted sets) for the secret scan.
func (h *harness) dumpRedis() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := h.store.Client()
	var b strings.Builder
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		b.WriteString(k + " = ")
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			return "", err
		}
		switch typ {
		case "string":
			v, _ := c.Get(ctx, k).Result()
			b.WriteString(v)
		case "hash":
			m, _ := c.HGetAll(ctx, k).Result()
			for f, v := range m {
				b.WriteString(f + ": " + v + "\n")
			}
		case "stream":
			xs, _ := c.XRange(ctx, k, "-", "+").Result()
			for _, x := range xs {
				for f, v := range x.Values {
					fmt.Fprintf(&b, "%s: %v\n", f, v)
				}
			}
		case "zset":
			vs, _ := c.ZRange(ctx, k, 0, -1).Result()
			b.WriteString(strings.Join(vs, "\n"))
		case "list":
			vs, _ := c.LRange(ctx, k, 0, -1).Result()
			b.WriteString(strings.Join(vs, "\n"))
		case "set":
			vs, _ := c.SMembers(ctx, k).Result()
			b.WriteString(strings.Join(vs, "\n"))
		}
		b.WriteByte('\n')
	}
	return b.String(), iter.Err()
}

// cli runs one dirsync command to completion and returns its exit code and
// output; the output is kept for the secret scan.
func (h *harness) cli(cfg string, args ...string) (int, string, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.dirsync, append(args, "--config", cfg)...)
	cmd.Env = append(os.Environ(), h.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		h.t.Fatalf("dirsync %s: %v", strings.Join(args, " "), err)
	}
	name := strings.ReplaceAll("dirsync "+strings.Join(args, " "), h.dir, "DIR")
	h.capture(name+" stdout", out.String())
	h.capture(name+" stderr", errb.String())
	return code, out.String(), errb.String()
}

// proc is a dirsync daemon (`dirsync run`) running as its own process. Its
// stdout and stderr go to one log file, appended across restarts.
type proc struct {
	h       *harness
	name    string
	cfg     string
	listen  string
	logPath string
	env     []string // extra environment of this process only (wins over the harness's)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// daemon prepares a daemon named name with the config at cfg, listening on
// listen (host:port, as written in the config). Start starts it.
func (h *harness) daemon(name, cfg, listen string) *proc {
	p := &proc{h: h, name: name, cfg: cfg, listen: listen, logPath: h.path(name + ".log")}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	h.t.Cleanup(p.Kill)
	return p
}

// listenAddr returns a free loopback address for a daemon's HTTP listener.
func listenAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }

// Start starts the daemon and waits until its HTTP listener answers.
func (p *proc) Start() {
	t := p.h.t
	t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins.dirsync, "run", "--config", p.cfg)
	cmd.Env = append(append(os.Environ(), p.h.env...), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	f.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := p.get("/healthz"); code == 200 {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited at start:\n%s", p.name, p.tail(3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no /healthz after 20s:\n%s", p.name, p.tail(3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the running process's id (0 when not running).
func (p *proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Alive reports whether the process runs.
func (p *proc) Alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to be gone.
func (p *proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen process dies only once resumed
	_ = cmd.Process.Kill()
	<-done
}

// Stop asks the daemon to stop (SIGTERM) and waits; SIGKILL after 20 s.
func (p *proc) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.h.t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
		p.Kill()
	}
}

// Signal sends sig (SIGSTOP, SIGCONT) to the daemon.
func (p *proc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		p.h.t.Fatalf("%s: not started", p.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		p.h.t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// get fetches a path from the daemon's HTTP listener; code 0 means no answer.
func (p *proc) get(path string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.listen + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logLine is one JSON log line of a daemon.
type logLine map[string]any

func (l logLine) str(k string) string {
	v, _ := l[k].(string)
	return v
}

// time is the line's timestamp.
func (l logLine) time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, l.str("time"))
	return t
}

// decision reports whether the line is a decision line.
func (l logLine) decision() bool { return l.str("msg") == "decision" }

// logSize is the log file's current size: lines before it were written
// before now.
func (p *proc) logSize() int64 {
	st, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// lines parses the log file's JSON lines from byte offset from (to the end).
func (p *proc) lines(from int64) []logLine {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil
	}
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// decisions returns the decision lines logged from byte offset from.
func (p *proc) decisions(from int64) []logLine {
	var out []logLine
	for _, l := range p.lines(from) {
		if l.decision() {
			out = append(out, l)
		}
	}
	return out
}

// waitLine waits until a line logged from offset from matches, and returns it.
func (p *proc) waitLine(from int64, within time.Duration, what string, match func(logLine) bool) logLine {
	p.h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range p.lines(from) {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			p.h.t.Fatalf("%s: no log line %s within %s; log tail:\n%s", p.name, what, within, p.tail(4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail returns the last n bytes of the log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// applied is the set of "target/user/action" with an applied decision
// that was recorded in the state store (no error).
func applied(ds []logLine) map[string]bool {
	out := map[string]bool{}
	for _, d := range ds {
		if d.str("outcome") == "applied" && d.str("error") == "" {
			out[d.str("target")+"/"+d.str("user")+"/"+d.str("action")] = true
		}
	}
	return out
}

// countBy counts decisions by a key function.
func countBy(ds []logLine, key func(logLine) string) map[string]int {
	out := map[string]int{}
	for _, d := range ds {
		out[key(d)]++
	}
	return out
}

// summary renders a count map sorted by key.
func summary(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// sortedCopy returns a sorted copy.
func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
