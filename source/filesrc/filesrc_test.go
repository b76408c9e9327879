package filesrc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var fixed = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func pull(t *testing.T, s Settings) (*identity.Snapshot, error, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	src, err := New("hr", s, Options{Logger: zap.New(core), Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	snap, err := src.Pull(context.Background())
	return snap, err, logs
}

func tp(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestPull(t *testing.T) {
	tests := []struct {
		name   string
		s      Settings
		users  []identity.User
		groups []identity.Group
	}{
		{
			name: "json with nested groups",
			s:    Settings{Path: "testdata/users.json"},
			users: []identity.User{
				{Key: "e-100", Source: "hr", Username: "ada", Email: "ada@example.com", GivenName: "Ada", FamilyName: "Lovelace", DisplayName: "Ada Lovelace", Active: true,
					Groups:     []string{"engineering", "staff"},
					Attributes: map[string]string{"department": "R&D", "employee_number": "100"},
					Facts:      map[string]string{identity.FactActive: "active=true"}},
				{Key: "e-101", Source: "hr", Username: "bob", Email: "bob@example.com", GivenName: "Bob", FamilyName: "Byte", DisplayName: "Bobby Byte", Active: false,
					Expires: tp("2026-12-01T23:59:59Z"), MustChangePassword: true, Groups: []string{"engineering", "staff"},
					Facts: map[string]string{identity.FactActive: "active=false", identity.FactExpires: "expires=2026-12-01", identity.FactMustChangePassword: "must_change_password=true"}},
				{Key: "e-102", Source: "hr", Username: "cy", Email: "cy@example.com", Active: true, Groups: []string{"engineering", "platform", "staff"}},
			},
			groups: []identity.Group{
				{Key: "empty", Name: "empty"},
				{Key: "engineering", Name: "engineering", Members: []string{"e-100", "e-101", "e-102"}},
				{Key: "platform", Name: "platform", Members: []string{"e-102"}},
				{Key: "staff", Name: "staff", Members: []string{"e-100", "e-101", "e-102"}},
			},
		},
		{
			name: "bare json array with status, numbers as keys and a timestamp",
			s:    Settings{Path: "testdata/bare.json", GroupsSeparator: ";"},
			users: []identity.User{
				{Key: "7", Source: "hr", Username: "sam@example.com", Email: "sam@example.com", Active: false, Expires: tp("2026-06-30T15:00:00Z"),
					Facts: map[string]string{identity.FactActive: "status=Terminated", identity.FactExpires: "end_date=2026-06-30T17:00:00+02:00"}},
				{Key: "8", Source: "hr", Username: "tia@example.com", Email: "tia@example.com", Active: true, Groups: []string{"oncall", "ops"},
					Facts: map[string]string{identity.FactActive: "status=active"}},
			},
			groups: []identity.Group{
				{Key: "oncall", Name: "oncall", Members: []string{"8"}},
				{Key: "ops", Name: "ops", Members: []string{"8"}},
			},
		},
		{
			name: "csv HR export: BOM, spaced headers, quotes, blank rows, zone",
			s:    Settings{Path: "testdata/hr.csv", Attributes: []string{"Department"}, Timezone: "Europe/Berlin"},
			users: []identity.User{
				{Key: "1001", Source: "hr", Username: "jdoe", Email: "j.doe@example.com", GivenName: "Jane", FamilyName: "Doe", DisplayName: "Jane Doe", Active: true,
					Groups: []string{"eng", "vpn-users"}, Attributes: map[string]string{"Department": "Engineering"},
					Facts: map[string]string{identity.FactActive: "Status=active"}},
				{Key: "1002", Source: "hr", Username: "rroe", Email: "rroe@example.com", GivenName: "Rick", FamilyName: "Roe", DisplayName: "Rick Roe", Active: false,
					Expires: tp("2026-12-01T22:59:59Z"), Groups: []string{"eng"}, Attributes: map[string]string{"Department": "Engineering"},
					Facts: map[string]string{identity.FactActive: "Status=terminated", identity.FactExpires: "End Date=2026-12-01"}},
				{Key: "1003", Source: "hr", Username: "mmay", Email: "mmay@example.com", GivenName: "May, Jr.", FamilyName: "May", DisplayName: "May, Jr. May", Active: false,
					Expires: tp("2027-01-15T22:59:59Z"), Attributes: map[string]string{"Department": `Sales "EMEA"`},
					Facts: map[string]string{identity.FactActive: "Status=Disabled", identity.FactExpires: "End Date=2027-01-15"}},
			},
			groups: []identity.Group{
				{Key: "eng", Name: "eng", Members: []string{"1001", "1002"}},
				{Key: "vpn-users", Name: "vpn-users", Members: []string{"1001"}},
			},
		},
		{
			name: "tsv with field overrides and custom status values",
			s: Settings{Path: "testdata/hr.tsv", Fields: Fields{Username: "login", Status: "state"}, Attributes: []string{"dept"},
				ActiveValues: []string{"ok"}, InactiveValues: []string{"gone"}},
			users: []identity.User{
				{Key: "1", Source: "hr", Username: "alice", Active: true, Attributes: map[string]string{"dept": "IT"}, Facts: map[string]string{identity.FactActive: "state=ok"}},
				{Key: "2", Source: "hr", Username: "brian", Active: false, Attributes: map[string]string{"dept": "IT"}, Facts: map[string]string{identity.FactActive: "state=gone"}},
			},
			groups: []identity.Group{},
		},
		{
			name: "nested group cycle resolves",
			s:    Settings{Path: "testdata/cycle.json"},
			users: []identity.User{
				{Key: "1", Source: "hr", Username: "ann", Active: true, Groups: []string{"a", "b", "top"}},
				{Key: "2", Source: "hr", Username: "ben", Active: true, Groups: []string{"a", "b", "top"}},
			},
			groups: []identity.Group{
				{Key: "a", Name: "a", Members: []string{"1", "2"}},
				{Key: "b", Name: "b", Members: []string{"1", "2"}},
				{Key: "top", Name: "top", Members: []string{"1", "2"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err, _ := pull(t, tc.s)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if snap.Source != "hr" || !snap.TakenAt.Equal(fixed) {
				t.Errorf("snapshot source %q taken %v, want hr at %v", snap.Source, snap.TakenAt, fixed)
			}
			if !reflect.DeepEqual(snap.Users, tc.users) {
				t.Errorf("users:\n got %s\nwant %s", js(snap.Users), js(tc.users))
			}
			if !reflect.DeepEqual(snap.Groups, tc.groups) {
				t.Errorf("groups:\n got %s\nwant %s", js(snap.Groups), js(tc.groups))
			}
		})
	}
}

func js(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

func TestPullDates(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(p, []byte("id,username,end_date\n1,ann,01.12.2026\n2,ben,2026-12-01T10:00:00Z\n3,cy,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at, tz string
		want   string
	}{
		{EndOfDay, "", "2026-12-01T23:59:59Z"},
		{StartOfDay, "", "2026-12-01T00:00:00Z"},
		{StartOfDay, "America/New_York", "2026-12-01T05:00:00Z"},
	} {
		snap, err, _ := pull(t, Settings{Path: p, DateFormat: "02.01.2006", ExpiresAt: tc.at, Timezone: tc.tz})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.at, tc.tz, err)
		}
		if got := snap.Users[0].Expires.Format(time.RFC3339); got != tc.want {
			t.Errorf("%s %s: expires %s, want %s", tc.at, tc.tz, got, tc.want)
		}
		if got := snap.Users[1].Expires.Format(time.RFC3339); got != "2026-12-01T10:00:00Z" {
			t.Errorf("RFC 3339 value: expires %s", got)
		}
		if snap.Users[2].Expires != nil {
			t.Errorf("empty end_date: expires %v, want none", snap.Users[2].Expires)
		}
	}
}

// TestPullErrors: every broken file fails the whole Pull, and the error names
// the file, the line (or record) and the field.
func TestPullErrors(t *testing.T) {
	tests := []struct {
		file string
		s    Settings
		want []string
	}{
		{file: "missing.csv", want: []string{"filesrc: hr:", "missing.csv", "no such file"}},
		{file: "empty.csv", want: []string{"testdata/empty.csv: file is empty"}},
		{file: "empty.json", want: []string{"testdata/empty.json: file is empty"}},
		{file: "headeronly.csv", want: []string{"testdata/headeronly.csv: file has no users"}},
		{file: "emptyusers.json", want: []string{"testdata/emptyusers.json: file has no users"}},
		{file: "malformed.json", want: []string{"testdata/malformed.json:4:16: invalid JSON: invalid character"}},
		{file: "trailing.json", want: []string{"testdata/trailing.json:2:1: invalid JSON: invalid character '{' after top-level value"}},
		{file: "notobject.json", want: []string{"testdata/notobject.json:1:1: must be an object"}},
		{file: "nousers.json", want: []string{`testdata/nousers.json: no "users" array`}},
		{file: "usersnotarray.json", want: []string{"testdata/usersnotarray.json:2:12: users: must be an array"}},
		{file: "elemnotobject.json", want: []string{"testdata/elemnotobject.json:3: users[1]: must be an object"}},
		{file: "wrongtype.json", want: []string{"testdata/wrongtype.json:3: users[1]: username: must be a string, not an object"}},
		{file: "badgroups.json", want: []string{"testdata/badgroups.json:3: users[1]: groups: must be a list of group names, not an array of non-scalar values"}},
		{file: "dupgroup.json", want: []string{`testdata/dupgroup.json:2: groups[2]: name: duplicate group "a" (also at testdata/dupgroup.json:2: groups[0])`}},
		{file: "dupkey.csv", want: []string{`testdata/dupkey.csv:4: employee_id: duplicate key "1" (also at testdata/dupkey.csv:2)`}},
		{file: "dupuser.csv", want: []string{`testdata/dupuser.csv:3: username: duplicate username "Ann" (also at testdata/dupuser.csv:2)`}},
		{file: "dupemail.csv", want: []string{`testdata/dupemail.csv:3: email: duplicate email "ANN@example.com" (also at testdata/dupemail.csv:2)`, `testdata/dupemail.csv:5: username: duplicate username "ann" (also at testdata/dupemail.csv:2)`}},
		{file: "nokey.csv", want: []string{"testdata/nokey.csv:3: employee_id: the key is empty"}},
		{file: "noname.csv", want: []string{"testdata/noname.csv:2: username: has neither a username nor an email"}},
		{file: "nokeycol.csv", want: []string{"testdata/nokeycol.csv: key: no key column found (looked for id, employee_id"}},
		{file: "nokeycol.csv", s: Settings{Key: "emp_no"}, want: []string{`testdata/nokeycol.csv: key: column "emp_no" is not in the file (it has "email", "username")`}},
		{file: "hr.csv", s: Settings{Fields: Fields{Email: "mail"}, Attributes: []string{"site"}}, want: []string{`fields.email: column "mail" is not in the file`, `attributes[0]: column "site" is not in the file`}},
		{file: "badstatus.csv", want: []string{`testdata/badstatus.csv:3: status: unknown value "on sabbatical" (want one of active`}},
		{file: "emptystatus.csv", want: []string{"testdata/emptystatus.csv:3: status: is empty"}},
		{file: "baddate.csv", want: []string{`testdata/baddate.csv:3: end_date: cannot read "01/12/2026" as a date (date_format "2006-01-02", or RFC 3339)`}},
		{file: "wrongcols.csv", want: []string{"testdata/wrongcols.csv:3: has 2 columns, the header has 3"}},
		{file: "badquote.csv", want: []string{"testdata/badquote.csv:2:", "quote"}},
		{file: "custom.csv", s: Settings{ActiveValues: []string{"active"}, InactiveValues: []string{"fired"}}, want: []string{`testdata/custom.csv:4: status: unknown value "on leave" (want one of active (active) or fired (inactive))`}},
		{file: "key.json", s: Settings{Fields: Fields{DisplayName: "-"}}, want: []string{"testdata/key.json:2: users[0]: key: the key is empty"}},
		{file: "key.json", want: []string{"testdata/key.json:2: users[0]: name: must be a string, not an object"}},
		{file: "users.json", s: Settings{Format: FormatCSV}, want: []string{"testdata/users.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s := tc.s
			s.Path = filepath.Join("testdata", tc.file)
			snap, err, _ := pull(t, s)
			if err == nil {
				t.Fatalf("Pull succeeded with %d users, want an error", len(snap.Users))
			}
			if snap != nil {
				t.Errorf("Pull returned a snapshot with its error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "filesrc: hr: ") {
				t.Errorf("error %q does not start with the package and source", err)
			}
		})
	}
}

// TestPullReportsEveryBadRow: one Pull names every broken row, not only the
// first.
func TestPullReportsEveryBadRow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "many.csv")
	if err := os.WriteFile(p, []byte("id,username,status\n1,a,active\n2,b,nope\n,c,active\n4,d,what\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err, _ := pull(t, Settings{Path: p})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, w := range []string{"many.csv:3: status", "many.csv:4: id: the key is empty", "many.csv:5: status"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nwant it to contain %q", err, w)
		}
	}
}

// TestPullRereads: the file is read again on every Pull.
func TestPullRereads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hr.json")
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`[{"id":"1","username":"ann","active":true}]`)
	src, err := New("hr", Settings{Path: p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := src.Pull(context.Background())
	if err != nil || !s1.Users[0].Active {
		t.Fatalf("first pull: %v %+v", err, s1)
	}
	write(`[{"id":"1","username":"ann","active":false}]`)
	s2, err := src.Pull(context.Background())
	if err != nil || s2.Users[0].Active {
		t.Fatalf("second pull: %v %+v", err, s2)
	}
	write(`[{"id":"1","username":"ann","active":fal`)
	if _, err := src.Pull(context.Background()); err == nil {
		t.Fatal("third pull of a truncated file succeeded")
	}
	os.Remove(p)
	if _, err := src.Pull(context.Background()); err == nil {
		t.Fatal("pull of a removed file succeeded")
	}
}

func TestPullCanceled(t *testing.T) {
	src, err := New("hr", Settings{Path: "testdata/users.json"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Pull(ctx); err == nil {
		t.Fatal("pull with a canceled context succeeded")
	}
}

func TestLogs(t *testing.T) {
	_, err, logs := pull(t, Settings{Path: "testdata/unknownmember.json"})
	if err != nil {
		t.Fatal(err)
	}
	if got := logs.FilterMessageSnippet("not users").FilterField(zap.Strings("members", []string{"a: ghost"})).Len(); got != 1 {
		t.Errorf("unknown member warnings: %d, want 1 (logs: %v)", got, logs.All())
	}
	_, err, logs = pull(t, Settings{Path: "testdata/cycle.json"})
	if err != nil {
		t.Fatal(err)
	}
	cyc := logs.FilterMessageSnippet("cycle").All()
	if len(cyc) != 1 || !reflect.DeepEqual(cyc[0].ContextMap()["cycle"], []any{"a", "b", "a"}) {
		t.Errorf("cycle warning: %v", cyc)
	}
}

func cfg(t *testing.T, yaml string) config.Source {
	t.Helper()
	c, err := config.Parse(strings.NewReader("sources:\n" + yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c.Sources[0]
}

func TestFactory(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"ok", "- {name: hr, type: file, path: testdata/hr.csv, groups_separator: ';', attributes: [Department]}", nil},
		{"missing path", "- {name: hr, type: file}", []string{"sources[0].path: is required"}},
		{"unknown key", "- {name: hr, type: file, path: a.csv, groups_seperator: ';'}", []string{`sources[0].groups_seperator: unknown key (did you mean "groups_separator"?)`}},
		{"unknown field override", "- {name: hr, type: file, path: a.csv, fields: {mail: x}}", []string{`sources[0].fields.mail: unknown key (did you mean "email"?)`}},
		{"bad format", "- {name: hr, type: file, path: a.xlsx}", []string{`sources[0].format: cannot tell the format from the extension of "a.xlsx"`}},
		{"bad format name", "- {name: hr, type: file, path: a.csv, format: xml}", []string{`sources[0].format: must be json, csv or auto (got "xml")`}},
		{"everything wrong at once", "- {name: hr, type: file, path: a.csv, timezone: Mars/Base, expires_at: noon, date_format: nonsense, delimiter: ';;', active_values: [x], inactive_values: [X]}",
			[]string{`sources[0].timezone: unknown time zone "Mars/Base"`, `sources[0].expires_at: must be end_of_day or start_of_day`, `sources[0].date_format: "nonsense" is not a Go date layout`, `sources[0].delimiter: must be one character or tab`, `sources[0].inactive_values[0]: "X" is also in active_values[0]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Factory(cfg(t, tc.yaml), source.Deps{Logger: zap.NewNop()})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Factory: %v", err)
				}
				if src.Name() != "hr" {
					t.Errorf("name %q", src.Name())
				}
				if _, err := src.Pull(context.Background()); err != nil {
					t.Errorf("Pull: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Factory succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestSample: the documented sample is a valid source entry.
func TestSample(t *testing.T) {
	c, err := config.Parse(strings.NewReader("sources:\n" + indent(Sample, "  ")))
	if err != nil {
		t.Fatalf("parse sample: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate sample: %v", err)
	}
	if len(c.Sources) != 1 || c.Sources[0].Type != Type {
		t.Fatalf("sample holds %d sources", len(c.Sources))
	}
	if _, err := Factory(c.Sources[0], source.Deps{}); err != nil {
		t.Fatalf("Factory(sample): %v", err)
	}
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// BenchmarkPullCSV reads an HR export of 100,000 people in 1,000 groups.
func BenchmarkPullCSV(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big.csv")
	var sb strings.Builder
	sb.WriteString("employee_id,username,email,first_name,last_name,status,end_date,groups,department\n")
	for i := 0; i < 100000; i++ {
		status := "active"
		if i%50 == 0 {
			status = "terminated"
		}
		fmt.Fprintf(&sb, "%d,user%d,user%d@example.com,First%d,Last%d,%s,2027-01-%02d,g%d;g%d;g%d,dept%d\n",
			i, i, i, i, i, status, i%28+1, i%1000, (i+1)%1000, (i+7)%1000, i%20)
	}
	benchPull(b, sb.String(), Settings{Path: p, Attributes: []string{"department"}})
}

// benchPull writes data to s.Path and pulls it once per iteration,
// expecting 100,000 people in 1,000 groups.
func benchPull(b *testing.B, data string, s Settings) {
	if err := os.WriteFile(s.Path, []byte(data), 0o600); err != nil {
		b.Fatal(err)
	}
	src, err := New("hr", s, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		snap, err := src.Pull(context.Background())
		if err != nil || len(snap.Users) != 100000 || len(snap.Groups) != 1000 {
			b.Fatalf("%v %d", err, len(snap.Users))
		}
	}
}

// TestLineCounter: the incremental line count agrees with counting from the
// start for increasing offsets, and for an offset behind the last one.
func TestLineCounter(t *testing.T) {
	data := []byte("{\n  \"users\": [\n\n    {\"id\": 1},\n    {\"id\": 2}\n  ]\n}\n")
	lc := &lineCounter{data: data}
	for off := 0; off <= len(data)+2; off++ {
		gl, gc := lc.at(off)
		wl, wc := lineCol(data, off)
		if gl != wl || gc != wc {
			t.Fatalf("offset %d: got %d:%d, want %d:%d", off, gl, gc, wl, wc)
		}
	}
	for _, off := range []int{40, 3, 17, 17, 0, 52} {
		gl, gc := lc.at(off)
		wl, wc := lineCol(data, off)
		if gl != wl || gc != wc {
			t.Fatalf("offset %d: got %d:%d, want %d:%d", off, gl, gc, wl, wc)
		}
	}
}

// TestPullJSONLinesAtScale: record errors name the record's line in a file
// of many records (the count that made the reader quadratic).
func TestPullJSONLinesAtScale(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.json")
	var sb strings.Builder
	sb.WriteString("{\"users\": [\n")
	const n = 5000
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(",\n")
		}
		if i == n-1 {
			sb.WriteString("  \"not an object\"")
			continue
		}
		fmt.Fprintf(&sb, "  {\"id\": \"e%d\",\n   \"email\": \"u%d@example.com\"}", i, i)
	}
	sb.WriteString("\n]}\n")
	if err := os.WriteFile(p, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err, _ := pull(t, Settings{Path: p})
	// Record i starts on line 2 + 2i.
	want := fmt.Sprintf("big.json:%d: users[%d]: must be an object", 2+2*(n-1), n-1)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want it to contain %q", err, want)
	}
}

// BenchmarkPullJSON reads a JSON HR export of 100,000 people in 1,000
// groups (each record on its own lines, as exports write them).
func BenchmarkPullJSON(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big.json")
	var sb strings.Builder
	sb.WriteString("{\"users\": [\n")
	for i := 0; i < 100000; i++ {
		if i > 0 {
			sb.WriteString(",\n")
		}
		fmt.Fprintf(&sb, "  {\"id\": \"%d\", \"username\": \"user%d\", \"email\": \"user%d@example.com\",\n   \"given_name\": \"First%d\", \"family_name\": \"Last%d\", \"active\": %t,\n   \"groups\": [\"g%d\", \"g%d\", \"g%d\"], \"attributes\": {\"department\": \"dept%d\"}}",
			i, i, i, i, i, i%50 != 0, i%1000, (i+1)%1000, (i+7)%1000, i%20)
	}
	sb.WriteString("\n]}\n")
	benchPull(b, sb.String(), Settings{Path: p})
}
