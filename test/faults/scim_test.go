package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

const (
	scimErrorURN = "urn:ietf:params:scim:api:messages:2.0:Error"
	scimUserURN  = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimPatchURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// scimWorld is a daemon with two SCIM sources (entra, okta), each with its
// own token, syncing into Netmaker.
type scimWorld struct {
	h     *harness
	d     *proc
	nm    *netmakerApp
	entra string // entra's token
	okta  string
	cfg   string
}

func newSCIMWorld(t *testing.T) *scimWorld {
	h := newHarness(t)
	h.startRedis(true)
	w := &scimWorld{h: h}
	w.entra = h.secret("entra scim token", "ENTRA_TOKEN")
	w.okta = h.secret("okta scim token", "OKTA_TOKEN")
	w.nm = h.newNetmaker(netmakerfake.Options{}, "NETMAKER_TOKEN", "developers", "operations")
	listen := listenAddr(t)
	w.cfg = h.writeFile("dirsync.yaml", []byte(h.stateYAML("5s")+fmt.Sprintf(`log: {level: info}
http: {listen: %q}
schedule: {full: "@daily"}
sources:
  - name: entra
    type: scim
    tokens: ["${ENTRA_TOKEN}"]
    max_body_bytes: 65536
  - name: okta
    type: scim
    tokens: ["${OKTA_TOKEN}"]
targets:
%s`, listen, netmakerYAML("vpn", w.nm.url, "NETMAKER_TOKEN", "    rate_limit: 1000\n"))))
	w.d = h.daemon("dirsync", w.cfg, listen)
	return w
}

// scimResp is one answer.
type scimResp struct {
	status int
	ctype  string
	body   []byte
}

func (r scimResp) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	return m
}

// do sends a request to a source's SCIM endpoint with token (none when "").
func (w *scimWorld) do(t *testing.T, src, token, method, path, body string) scimResp {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+w.d.listen+"/scim/"+src+"/v2"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	w.h.capture("scim answers", string(b))
	return scimResp{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
}

// wantError checks an RFC 7644 §3.12 error: the status, the SCIM content
// type, the Error schema, status as a string, and scimType when given.
func wantError(t *testing.T, what string, r scimResp, status int, scimType string) {
	t.Helper()
	m := r.json()
	switch {
	case r.status != status:
		t.Errorf("%s: status %d, want %d: %s", what, r.status, status, trim(string(r.body), 300))
	case !strings.HasPrefix(r.ctype, "application/scim+json"):
		t.Errorf("%s: content type %q", what, r.ctype)
	case m == nil:
		t.Errorf("%s: body is not a JSON object: %s", what, trim(string(r.body), 300))
	case fmt.Sprint(m["schemas"]) != "["+scimErrorURN+"]":
		t.Errorf("%s: schemas %v", what, m["schemas"])
	case m["status"] != fmt.Sprint(status):
		t.Errorf("%s: status field %#v, want the string %q", what, m["status"], fmt.Sprint(status))
	case scimType != "" && m["scimType"] != scimType:
		t.Errorf("%s: scimType %v, want %s (detail %v)", what, m["scimType"], scimType, m["detail"])
	}
}

// TestHostileSCIM is item 6: the daemon's SCIM endpoints take no token,
// a wrong token, another source's token, bodies over the limit, deeply
// nested JSON, slow clients, malformed filters and PATCH paths. Every
// answer is an RFC 7644 error, the daemon stays up, the stored users read
// back unchanged (also after a restart), and Netmaker sees only the
// legitimate creates. The fuzz targets (scim/fuzz_test.go) run their seed
// corpus in `go test ./scim`; scripts/faults-long.sh fuzzes each for
// FUZZTIME (default 10m).
func TestHostileSCIM(t *testing.T) {
	w := newSCIMWorld(t)
	w.d.Start()
	before := w.d.logSize()
	var ids []string
	for i := range 3 {
		name := fmt.Sprintf("scim%d@example.test", i)
		r := w.do(t, "entra", w.entra, "POST", "/Users", fmt.Sprintf(`{"schemas":[%q],"userName":%q,"externalId":"x%d",
			"name":{"givenName":"G%d","familyName":"F"},"emails":[{"value":%q,"type":"work","primary":true}],"active":true}`, scimUserURN, name, i, i, name))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		ids = append(ids, r.json()["id"].(string))
	}
	stored := func() []map[string]any {
		var out []map[string]any
		for _, id := range ids {
			r := w.do(t, "entra", w.entra, "GET", "/Users/"+id, "")
			if r.status != 200 {
				t.Fatalf("GET %s: %d", id, r.status)
			}
			out = append(out, r.json())
		}
		return out
	}
	orig := stored()
	eventually(t, 30*time.Second, "the three creates applied", func() bool {
		n := 0
		for _, d := range w.d.decisions(before) {
			if d.str("action") == "create" && d.str("outcome") == "applied" {
				n++
			}
		}
		return n == 3
	})
	id := ids[0]
	count := 0
	answers := map[string]int{} // "status scimType" → count
	check := func(what string, r scimResp, status int, scimType string) {
		t.Helper()
		count++
		st, _ := r.json()["scimType"].(string)
		answers[strings.TrimSpace(fmt.Sprint(r.status)+" "+st)]++
		wantError(t, what, r, status, scimType)
	}
	patch := func(path, value string) string {
		return fmt.Sprintf(`{"schemas":[%q],"Operations":[{"op":"replace","path":%s,"value":%s}]}`, scimPatchURN, path, value)
	}

	// Authentication.
	for _, c := range []struct {
		what, src, tok string
	}{
		{"no token", "entra", ""},
		{"wrong token", "entra", "not-the-token"},
		{"okta's token at entra", "entra", w.okta},
		{"entra's token at okta", "okta", w.entra},
	} {
		check(c.what+": GET", w.do(t, c.src, c.tok, "GET", "/Users", ""), 401, "")
		check(c.what+": PATCH", w.do(t, c.src, c.tok, "PATCH", "/Users/"+id, patch(`"active"`, "false")), 401, "")
		check(c.what+": DELETE", w.do(t, c.src, c.tok, "DELETE", "/Users/"+id, ""), 401, "")
	}
	// Sizes and shapes.
	big := fmt.Sprintf(`{"schemas":[%q],"userName":"big@example.test","displayName":%q}`, scimUserURN, strings.Repeat("x", 70000))
	check("body over max_body_bytes", w.do(t, "entra", w.entra, "POST", "/Users", big), 413, "")
	check("body over the limit in a PATCH", w.do(t, "entra", w.entra, "PATCH", "/Users/"+id, patch(`"displayName"`, `"`+strings.Repeat("y", 70000)+`"`)), 413, "")
	nested := fmt.Sprintf(`{"schemas":[%q],"userName":"deep@example.test","name":%s%s}`, scimUserURN, strings.Repeat("[", 25000), strings.Repeat("]", 25000))
	check("25,000-deep JSON in a create", w.do(t, "entra", w.entra, "POST", "/Users", nested), 400, "")
	check("20,000-deep JSON in a PATCH value", w.do(t, "entra", w.entra, "PATCH", "/Users/"+id, patch(`"displayName"`, strings.Repeat("[", 20000)+strings.Repeat("]", 20000))), 400, "")
	check("not JSON", w.do(t, "entra", w.entra, "POST", "/Users", `{"schemas":`), 400, "invalidSyntax")
	check("userName a number", w.do(t, "entra", w.entra, "POST", "/Users", fmt.Sprintf(`{"schemas":[%q],"userName":42}`, scimUserURN)), 400, "")
	// Filters.
	for _, f := range []string{
		`userName eq`, `userName eq "a" and`, `userName zz "a"`, `(userName eq "a"`, `userName eq "a" or or userName eq "b"`,
		`emails[type eq "work"`, `' OR 1=1 --`, strings.Repeat("(", 5000) + `userName eq "a"` + strings.Repeat(")", 5000),
		`userName eq "` + strings.Repeat(`\"`, 1000),
	} {
		check("filter "+trim(f, 40), w.do(t, "entra", w.entra, "GET", "/Users?filter="+url.QueryEscape(f), ""), 400, "invalidFilter")
	}
	// PATCH paths.
	for _, p := range []string{
		`name..givenName`, `emails[type eq "work"`, `emails[type eq "work"].`, `emails[type zz "work"].value`, `]`, `nosuchattribute`,
		`name.nosuch`, `urn:ietf:params:scim:schemas:core:2.0:User:`, `members[value eq "x"]`, strings.Repeat("a.", 5000) + "b",
	} {
		check("PATCH path "+trim(p, 40), w.do(t, "entra", w.entra, "PATCH", "/Users/"+id, patch(fmt.Sprintf("%q", p), `"v"`)), 400, "")
	}
	check("PATCH op nonsense", w.do(t, "entra", w.entra, "PATCH", "/Users/"+id,
		fmt.Sprintf(`{"schemas":[%q],"Operations":[{"op":"explode","path":"active","value":false}]}`, scimPatchURN)), 400, "")
	check("PATCH without PatchOp schema", w.do(t, "entra", w.entra, "PATCH", "/Users/"+id, `{"schemas":[],"Operations":[{"op":"replace","path":"active","value":false}]}`), 400, "")

	// Slow clients: headers that never end; a body that trickles (long form).
	headerClose := slowClient(t, w.d.listen, false)
	t.Logf("slow headers: connection closed by the server after %s", headerClose.Round(100*time.Millisecond))
	if headerClose > 15*time.Second {
		t.Errorf("a client that never finishes its headers kept the connection %s", headerClose)
	}
	figs := []string{fmt.Sprintf("%d hostile requests, each an RFC 7644 error (%s)", count, summary(answers)), fmt.Sprintf("slow headers closed after %s", headerClose.Round(100*time.Millisecond))}
	if long() {
		bodyClose := slowClient(t, w.d.listen, true)
		t.Logf("slow body: connection closed by the server after %s", bodyClose.Round(100*time.Millisecond))
		if bodyClose > 45*time.Second {
			t.Errorf("a client trickling its body kept the connection %s", bodyClose)
		}
		figs = append(figs, fmt.Sprintf("slow body closed after %s", bodyClose.Round(100*time.Millisecond)))
	} else {
		figs = append(figs, "slow body: long form only (the daemon's read timeout is 30 s)")
	}

	// Nothing corrupted, nothing applied.
	if code, _ := w.d.get("/healthz"); code != 200 || !w.d.Alive() {
		t.Fatal("the daemon is down after the hostile input")
	}
	if got := stored(); !reflect.DeepEqual(got, orig) {
		t.Errorf("stored users changed:\nbefore %v\nafter  %v", orig, got)
	}
	w.d.Stop()
	w.d.Start()
	if got := stored(); !reflect.DeepEqual(got, orig) {
		t.Errorf("stored users changed across a restart:\nbefore %v\nafter  %v", orig, got)
	}
	writes := 0
	for _, c := range w.nm.rec.Calls() {
		if kind, _ := nmWrite(c); kind != "" {
			writes++
			if kind != "create" {
				t.Errorf("Netmaker got %s %s: hostile input changed something", c.Method, c.Path)
			}
		}
	}
	if writes != 3 {
		t.Errorf("Netmaker got %d writes, want the 3 creates", writes)
	}
	w.h.cli(w.cfg, "decisions", "--output", "json", "--limit", "100")
	w.h.checkSecrets()
	figs = append(figs, "stored users unchanged (also after a restart); Netmaker saw only the 3 legitimate creates",
		"fuzzing: seed corpus in `go test ./scim`; long form: scripts/faults-long.sh")
	result(t, "6 hostile SCIM input", count, figs...)
}

// slowClient opens a connection to addr and starts a SCIM POST it never
// finishes: headers without their end, or (body) complete headers and a
// body sent one byte a second. It returns how long the server kept the
// connection open.
func slowClient(t *testing.T, addr string, body bool) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /scim/entra/v2/Users HTTP/1.1\r\nHost: %s\r\nContent-Type: application/scim+json\r\n", addr)
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(c))
		close(closed)
	}()
	if body {
		fmt.Fprintf(c, "Content-Length: 1000\r\n\r\n{")
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case <-closed:
			return time.Since(start)
		case <-tick.C:
			if body {
				_, _ = c.Write([]byte(" "))
			} else {
				_, _ = c.Write([]byte("X-Slow: 1\r\n"))
			}
		case <-deadline:
			t.Fatalf("the server kept a slow client for 90 s")
		}
	}
}
