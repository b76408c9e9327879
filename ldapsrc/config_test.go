package ldapsrc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func parseSources(t *testing.T, yaml string) []config.Source {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader("sources:\n" + yaml))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, yaml)
	}
	return cfg.Sources
}

func TestSampleValidates(t *testing.T) {
	t.Setenv("LDAP_BIND_PASSWORD", "sample-password")
	srcs := parseSources(t, Sample)
	if len(srcs) != 1 || srcs[0].Type != Type {
		t.Fatalf("sample sources: %+v", srcs)
	}
	s, err := Factory(srcs[0], source.Deps{Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("sample does not validate: %v", err)
	}
	ls := s.(*Source)
	if ls.Name() != "corp-ad" || ls.s.PageSize != 500 || ls.s.Groups.Nested != nestedClient || ls.s.Inc.Mode != IncAuto ||
		ls.s.RequestTimeout.D() != time.Minute || ls.s.BindPassword.Value() != "sample-password" {
		t.Fatalf("sample settings: %+v", ls.s)
	}
}

func TestFactoryErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"no urls", "  - name: a\n    type: ldap\n", []string{"sources[0].urls: at least one"}},
		{"bad scheme", "  - name: a\n    type: ldap\n    urls: [http://x]\n", []string{"sources[0].urls[0]: scheme must be ldap or ldaps"}},
		{"starttls with ldaps", "  - name: a\n    type: ldap\n    urls: [ldaps://x]\n    start_tls: true\n", []string{"sources[0].start_tls: cannot be combined"}},
		{"typo", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    page_sise: 5\n", []string{`sources[0].page_sise: unknown key (did you mean "page_size"?)`}},
		{"nested typo", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    users:\n      atributes: {}\n", []string{"sources[0].users.atributes: unknown key"}},
		{"bad flavour", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    flavour: novell\n", []string{"sources[0].flavour: must be"}},
		{"password without dn", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    bind_password: pw\n", []string{"sources[0].bind_dn: is required"}},
		{"dn without password", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    bind_dn: cn=a,dc=b\n", []string{"sources[0].bind_password: is required"}},
		{"bad filter", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    users:\n      filter: (uid=a\n", []string{"sources[0].users.filter: invalid filter"}},
		{"bad base", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    groups:\n      base_dn: nonsense\n", []string{"sources[0].groups.base_dn: invalid DN"}},
		{"AD page size", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    flavour: active_directory\n    page_size: 5000\n", []string{"sources[0].page_size: Active Directory returns at most 1000"}},
		{"syncrepl on AD", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    flavour: active_directory\n    incremental: {mode: syncrepl}\n", []string{"sources[0].incremental.mode: syncrepl needs OpenLDAP"}},
		{"usn on OpenLDAP", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    flavour: openldap\n    incremental: {mode: usn}\n", []string{"sources[0].incremental.mode: usn needs Active Directory"}},
		{"missing CA file", "  - name: a\n    type: ldap\n    urls: [ldaps://x]\n    tls: {ca_file: " + filepath.Join(dir, "none.pem") + "}\n", []string{"sources[0].tls.ca_file:"}},
		{"key without key attribute", "  - name: a\n    type: ldap\n    urls: [ldap://x]\n    users:\n      attributes: {key: '-'}\n", []string{"sources[0].users.attributes.key: a stable key"}},
		{"several at once", "  - name: a\n    type: ldap\n    urls: [ftp://x]\n    parallel: 100\n    groups: {nested: deep}\n",
			[]string{"sources[0].urls[0]", "sources[0].parallel", "sources[0].groups.nested"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcs := parseSources(t, tc.yaml)
			_, err := Factory(srcs[0], source.Deps{Logger: zap.NewNop()})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCAFileWithoutCertificates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New("x", Settings{URLs: []string{"ldaps://x"}, TLS: TLS{CAFile: p}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("got %v", err)
	}
}

func TestInsecureSkipVerifyWarnsAtStart(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	if _, err := New("x", Settings{URLs: []string{"ldaps://x"}, TLS: TLS{InsecureSkipVerify: true}}, Options{Logger: zap.New(core)}); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("verification is OFF").Len() != 1 {
		t.Fatalf("logs: %v", logs.All())
	}
}

func TestFormatGUID(t *testing.T) {
	// objectGUID bytes as AD sends them, and the GUID string AD tools show.
	raw := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	const want = "00112233-4455-6677-8899-aabbccddeeff"
	if got := formatGUID(raw); got != want {
		t.Fatalf("formatGUID = %s", got)
	}
	back, err := guidBytes(want)
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("guidBytes = %x, %v", back, err)
	}
	if got := formatUUID([]byte{0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}); got != "00112233-4455-6677-8899-aabbccddeeff" {
		t.Fatalf("formatUUID = %s", got)
	}
}

func TestFileTimeAndSID(t *testing.T) {
	if got := fileTime(134405568000000000); !got.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("fileTime = %v", got)
	}
	sid := []byte{1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0x01, 0x02, 0, 0}
	s, ok := formatSID(sid)
	if !ok || s != "S-1-5-21-1-2-3-513" {
		t.Fatalf("formatSID = %q %v", s, ok)
	}
	if rid, ok := sidRID(sid); !ok || rid != 513 {
		t.Fatalf("sidRID = %d", rid)
	}
	if _, ok := formatSID([]byte{1, 5, 0}); ok {
		t.Fatal("short SID accepted")
	}
}

func TestAtoi(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "514": 514, "-1": -1, "9223372036854775807": 9223372036854775807} {
		if got, ok := atoi([]byte(in)); !ok || got != want {
			t.Errorf("atoi(%q) = %d %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "1x", "TRUE", "12345678901234567890"} {
		if _, ok := atoi([]byte(in)); ok {
			t.Errorf("atoi(%q) accepted", in)
		}
	}
}

func TestNormDN(t *testing.T) {
	for in, want := range map[string]string{
		"uid=Alice,ou=People,dc=Example,dc=Test":        "uid=alice,ou=people,dc=example,dc=test",
		"UID=alice , OU=people,  dc=example ,dc=test  ": "uid=alice,ou=people,dc=example,dc=test",
		`cn=Smith\, John,ou=x`:                          `cn=smith\, john,ou=x`,
		`cn=trailing\ ,ou=x`:                            `cn=trailing\ ,ou=x`,
		"cn=a+sn=b,ou=x":                                "cn=a+sn=b,ou=x",
	} {
		if got := normDN(in); got != want {
			t.Errorf("normDN(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"uid=a,dc=b#'0101'B": "uid=a,dc=b",
		"uid=a,dc=b":         "uid=a,dc=b",
		"uid=a#b,dc=c":       "uid=a#b,dc=c",
		"cn=x'B":             "cn=x'B",
	} {
		if got := string(stripUniqueID([]byte(in))); got != want {
			t.Errorf("stripUniqueID(%q) = %q", in, got)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		name     string
		next     int
		ok       bool
		attrName string
	}{
		{"member;range=0-1499", 1500, true, "member"},
		{"Member;Range=1500-*", 0, true, "member"},
		{"member", 0, false, "member"},
		{"memberOf;range=0-1", 0, false, "member"},
		{"member;range=0-x", 0, false, "member"},
	} {
		next, ok := parseRange([]byte(tc.name), tc.attrName)
		if next != tc.next || ok != tc.ok {
			t.Errorf("parseRange(%q) = %d %v", tc.name, next, ok)
		}
	}
}

func TestPartitionsCoverEverything(t *testing.T) {
	r := &reader{src: &Source{s: Settings{Parallel: 3}}, p: profile{flavour: FlavourOpenLDAP, userFilter: "(objectClass=person)"}, dse: &rootDSE{openLDAP: true}}
	got := r.partFilters()
	want := []string{
		"(&(objectClass=person)(!(entryUUID>=55000000-0000-0000-0000-000000000000)))",
		"(&(objectClass=person)(&(entryUUID>=55000000-0000-0000-0000-000000000000)(!(entryUUID>=aa000000-0000-0000-0000-000000000000))))",
		"(&(objectClass=person)(entryUUID>=aa000000-0000-0000-0000-000000000000))",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("partitions:\n%s", strings.Join(got, "\n"))
	}
	r.p.flavour, r.dse.highestUSN, r.dse.ad, r.dse.openLDAP = FlavourActiveDirectory, 3000, true, false
	if got := r.partFilters(); len(got) != 3 || !strings.Contains(got[0], "(!(uSNCreated>=1000))") || !strings.Contains(got[2], "(uSNCreated>=2000)") {
		t.Fatalf("AD partitions: %v", got)
	}
	r.src.log = zap.NewNop()
	r.dse.ad = false
	if got := r.partFilters(); len(got) != 1 {
		t.Fatalf("an unknown server got partitions: %v", got)
	}
}

// auto picks notify only where the root DSE offers the control; the poll
// interval defaults per mode.
func TestIncrementalModeAuto(t *testing.T) {
	src := &Source{s: Settings{Inc: Incremental{Mode: IncAuto}}}
	ad := profile{flavour: FlavourActiveDirectory}
	withNotify := &rootDSE{controls: map[string]bool{"1.2.840.113556.1.4.528": true}}
	for _, tc := range []struct {
		p    profile
		d    *rootDSE
		want string
	}{
		{ad, withNotify, IncNotify},
		{ad, &rootDSE{controls: map[string]bool{}}, IncUSN},
		{profile{flavour: FlavourOpenLDAP}, withNotify, IncSyncrepl},
	} {
		if got := src.mode(tc.p, tc.d); got != tc.want {
			t.Errorf("%s with %v: %s, want %s", tc.p.flavour, tc.d.controls, got, tc.want)
		}
	}
	for mode, want := range map[string]time.Duration{IncUSN: 4 * time.Second, IncNotify: 5 * time.Minute, IncModifyTimestamp: 15 * time.Second} {
		if got := src.pollEvery(mode); got != want {
			t.Errorf("%s: poll every %v, want %v", mode, got, want)
		}
	}
	src.s.Inc.PollInterval = config.Duration(time.Second)
	if got := src.pollEvery(IncNotify); got != time.Second {
		t.Errorf("set poll_interval: %v", got)
	}
	st := Settings{URLs: []string{"ldap://x"}, Flavour: FlavourOpenLDAP, Inc: Incremental{Mode: IncNotify}}
	if ps := st.validate("s"); len(ps) == 0 {
		t.Error("notify on openldap accepted")
	}
}
