// Command pages measures the web console's page times on a whole `dirsync
// run` daemon at scale: N people in a file source, a memory target, the
// embedded store, the daemon re-reading the source every 10 s, and a held
// plan of H suspensions. It signs in with the admin token and times, R
// times each: the overview, the held plan's page, a person's page, and an
// approval (until its answer, and until the plan is gone); each approval
// holds a fresh plan first. Run it for several binaries (a base revision
// and the working tree) in one run: bench/console-pages.sh does.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

type user struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Email    string   `json:"email"`
	Active   bool     `json:"active"`
	Groups   []string `json:"groups"`
}

const token = "bench-admin-token-0123456789"

type bench struct {
	dir, base, cookie string
	people, held      int
	client            *http.Client
	disabled          int
}

func main() {
	bin := flag.String("bin", "", "dirsync binary")
	label := flag.String("label", "", "name of this binary in the results")
	people := flag.Int("people", 10000, "people in the source")
	held := flag.Int("held", 500, "suspensions in each held plan")
	rounds := flag.Int("rounds", 5, "measures per page")
	flag.Parse()
	if err := run(*bin, *label, *people, *held, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "pages:", err)
		os.Exit(1)
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *bench) writeUsers() error {
	us := make([]user, b.people)
	for i := range us {
		us[i] = user{ID: fmt.Sprintf("e%05d", i), Username: fmt.Sprintf("user%05d", i), Email: fmt.Sprintf("user%05d@example.test", i),
			Active: i >= b.disabled, Groups: []string{"staff"}}
	}
	raw, _ := json.Marshal(map[string]any{"users": us})
	tmp := filepath.Join(b.dir, "hr.json.tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir, "hr.json"))
}

func run(bin, label string, people, held, rounds int) error {
	dir, err := os.MkdirTemp("", "dirsync-pages-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port := freePort()
	b := &bench{dir: dir, base: fmt.Sprintf("http://localhost:%d/ui/", port), people: people, held: held,
		client: &http.Client{Timeout: 5 * time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := b.writeUsers(); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`log: {level: warn}
state: {backend: embedded, path: %[1]s/state.db}
http:
  listen: "127.0.0.1:%[2]d"
  console: {enabled: true, base_url: %[3]q, admin_token: %[4]q}
schedule: {full: "@daily", incremental: 10s, reconcile: "off"}
sources:
  - {name: hr, type: file, path: %[1]s/hr.json}
targets:
  - {name: app, type: memory, sources: [hr], scope: [staff], rate_limit: 100000}
`, dir, port, b.base, token)
	if err := os.WriteFile(filepath.Join(dir, "dirsync.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "run", "--config", filepath.Join(dir, "dirsync.yaml"))
	logf, _ := os.Create(filepath.Join(dir, "daemon.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	if err := b.waitFor(2*time.Minute, func() bool { return b.signIn() == nil }); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if err := b.waitFor(5*time.Minute, func() bool {
		_, body, err := b.get("runs")
		return err == nil && strings.Contains(body, `class="st-ok"`)
	}); err != nil {
		return fmt.Errorf("the first sync: %w", err)
	}
	times := map[string][]time.Duration{}
	for r := range rounds {
		id, err := b.hold()
		if err != nil {
			return err
		}
		if r == 0 {
			for range rounds {
				for _, p := range []struct{ name, path string }{
					{"overview", ""},
					{"held-plan page", "held/" + id},
					{"person page", "person?q=" + url.QueryEscape(fmt.Sprintf("user%05d@example.test", people/2))},
				} {
					t0 := time.Now()
					code, _, err := b.get(p.path)
					if err != nil || code != 200 {
						return fmt.Errorf("%s: %d %v", p.name, code, err)
					}
					times[p.name] = append(times[p.name], time.Since(t0))
				}
			}
		}
		_, page, err := b.get("held/" + id)
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			return errors.New("no CSRF token on the held page")
		}
		t0 := time.Now()
		code, err := b.post("held/"+id+"/approve", url.Values{"csrf": {m[1]}})
		if err != nil || code >= 400 {
			return fmt.Errorf("approve: %d %v", code, err)
		}
		times["approve (answer)"] = append(times["approve (answer)"], time.Since(t0))
		if err := b.waitFor(5*time.Minute, func() bool {
			_, body, err := b.get("held")
			return err == nil && !strings.Contains(body, id)
		}); err != nil {
			return fmt.Errorf("approval of %s: %w", id, err)
		}
		times["approve (done)"] = append(times["approve (done)"], time.Since(t0))
	}
	for _, name := range []string{"overview", "held-plan page", "person page", "approve (answer)", "approve (done)"} {
		ts := times[name]
		slices.Sort(ts)
		fmt.Printf("| %s | %s | %d | %s | %s | %s |\n", label, name, len(ts), ms(ts[len(ts)/2]), ms(ts[0]), ms(ts[len(ts)-1]))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// hold disables the next H people and waits for the plan the guard holds.
func (b *bench) hold() (string, error) {
	_, before, err := b.get("held")
	if err != nil {
		return "", err
	}
	b.disabled += b.held
	if err := b.writeUsers(); err != nil {
		return "", err
	}
	re := regexp.MustCompile(`href="/ui/held/([^"]+)"`)
	var id string
	err = b.waitFor(5*time.Minute, func() bool {
		_, body, err := b.get("held")
		if err != nil {
			return false
		}
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			if !strings.Contains(before, m[0]) {
				id = m[1]
				return true
			}
		}
		return false
	})
	return id, err
}

func (b *bench) waitFor(d time.Duration, ok func() bool) error {
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			return fmt.Errorf("not within %v (log: %s)", d, filepath.Join(b.dir, "daemon.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func (b *bench) do(req *http.Request) (*http.Response, string, error) {
	if b.cookie != "" {
		req.Header.Set("Cookie", b.cookie)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), nil
}

func (b *bench) get(path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	resp, body, err := b.do(req)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, body, nil
}

func (b *bench) post(path string, form url.Values) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _, err := b.do(req)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// signIn uses the admin-token form: the login cookie carries its CSRF token.
func (b *bench) signIn() error {
	req, _ := http.NewRequest(http.MethodGet, b.base+"login", nil)
	resp, body, err := b.do(req)
	if err != nil {
		return err
	}
	var login string
	for _, c := range resp.Cookies() {
		if c.Name == "dirsync_login" {
			login = c.Name + "=" + c.Value
		}
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil || login == "" {
		return errors.New("no sign-in form")
	}
	req, _ = http.NewRequest(http.MethodPost, b.base+"login/token", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", login)
	resp, _, err = b.do(req)
	if err != nil {
		return err
	}
	for _, c := range resp.Cookies() {
		if c.Name == "dirsync_session" && c.Value != "" {
			b.cookie = c.Name + "=" + c.Value
			return nil
		}
	}
	return fmt.Errorf("no session (HTTP %d)", resp.StatusCode)
}
