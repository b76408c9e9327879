package ldapsrc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testenv"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fixtureLDIF is the OpenLDAP directory most tests read:
//
//	alice  active, employeeNumber 1001      staff ⊃ eng ⊃ ops ⊃ eng (a cycle)
//	bob    locked (pwdAccountLockedTime)    eng: bob; ops: carol
//	carol  expires 2026-12-01 (shadowExpire) devs (posixGroup): dave
//	dave   pwdReset: TRUE                   auditors (groupOfUniqueNames): dave
//	eve    no groups
func fixtureLDIF(c *slapd.Config) string {
	var b strings.Builder
	b.WriteString(c.User("alice", "employeeNumber: 1001"))
	b.WriteString(c.User("bob", "pwdAccountLockedTime: 000001010000Z"))
	b.WriteString(c.User("carol", "shadowExpire: 20788"))
	b.WriteString(c.User("dave", "pwdReset: TRUE"))
	b.WriteString(c.User("eve"))
	b.WriteString(c.Group("staff", c.UserDN("alice"), c.GroupDN("eng")))
	b.WriteString(c.Group("eng", c.UserDN("bob"), c.GroupDN("ops")))
	// Spacing and case differ from the entry DNs on purpose.
	b.WriteString(c.Group("ops", "UID=carol, ou=People,"+c.Suffix, c.GroupDN("eng")))
	fmt.Fprintf(&b, "dn: cn=devs,%s\nobjectClass: posixGroup\ncn: devs\ngidNumber: 5000\nmemberUid: dave\nmemberUid: nobody\n\n", c.GroupsDN())
	fmt.Fprintf(&b, "dn: cn=auditors,%s\nobjectClass: groupOfUniqueNames\ncn: auditors\nuniqueMember: %s#'0101'B\n\n", c.GroupsDN(), c.UserDN("dave"))
	return b.String()
}

func baseCfg() *slapd.Config { return &slapd.Config{Suffix: slapd.DefaultSuffix} }

// adminSettings reads srv as its admin.
func adminSettings(srv *slapd.Server) Settings {
	return Settings{
		URLs:         []string{srv.URL},
		BindDN:       srv.AdminDN,
		BindPassword: config.NewSecret(slapd.AdminPassword),
		Users:        Users{BaseDN: srv.PeopleDN(), ExtraAttributes: []string{"employeeNumber"}},
		Groups:       Groups{BaseDN: srv.GroupsDN()},
	}
}

func newSource(t *testing.T, s Settings) *Source {
	t.Helper()
	src, err := New("corp", s, Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func byUsername(snap *identity.Snapshot) map[string]identity.User {
	m := map[string]identity.User{}
	for _, u := range snap.Users {
		m[u.Username] = u
	}
	return m
}

func groupMembers(snap *identity.Snapshot, users map[string]identity.User) map[string][]string {
	byKey := map[string]string{}
	for _, u := range users {
		byKey[u.Key] = u.Username
	}
	out := map[string][]string{}
	for _, g := range snap.Groups {
		var names []string
		for _, k := range g.Members {
			names = append(names, byKey[k])
		}
		slices.Sort(names)
		out[g.Name] = names
	}
	return out
}

func TestPullOpenLDAP(t *testing.T) {
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(baseCfg())})
	for _, tc := range []struct {
		name   string
		adjust func(*Settings)
	}{
		{"one page", func(*Settings) {}},
		{"small pages", func(s *Settings) { s.PageSize = 2; s.Groups.PageSize = 1 }},
		{"parallel partitions", func(s *Settings) { s.Parallel = 3; s.PageSize = 1 }},
		{"explicit flavour and base from root DSE", func(s *Settings) {
			s.Flavour = FlavourOpenLDAP
			s.Users.BaseDN, s.Groups.BaseDN = "", ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := adminSettings(srv)
			tc.adjust(&st)
			snap, err := newSource(t, st).Pull(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			users := byUsername(snap)
			if len(users) != 5 || len(snap.Users) != 5 {
				t.Fatalf("users: %v", users)
			}
			alice := users["alice"]
			if len(alice.Key) != 36 || alice.Source != "corp" || alice.Email != "alice@example.test" || alice.GivenName != "Alice" ||
				alice.FamilyName != "Test" || alice.DisplayName != "Alice Test" || !alice.Active || alice.Expires != nil ||
				alice.MustChangePassword || alice.Attributes["employeeNumber"] != "1001" {
				t.Errorf("alice: %+v", alice)
			}
			if alice.Facts[identity.FactActive] != "pwdAccountLockedTime not set" {
				t.Errorf("alice facts: %v", alice.Facts)
			}
			if bob := users["bob"]; bob.Active || bob.Facts[identity.FactActive] != "pwdAccountLockedTime set" {
				t.Errorf("bob (locked): %+v", bob)
			}
			carol := users["carol"]
			if carol.Expires == nil || !carol.Expires.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) ||
				carol.Facts[identity.FactExpires] != "shadowExpire 2026-12-01" || !carol.Active {
				t.Errorf("carol (expiring): %+v", carol)
			}
			if dave := users["dave"]; !dave.MustChangePassword || dave.Facts[identity.FactMustChangePassword] != "pwdReset: TRUE" {
				t.Errorf("dave (must change): %+v", dave)
			}
			want := map[string][]string{
				"alice": {"staff"}, "bob": {"eng", "ops", "staff"}, "carol": {"eng", "ops", "staff"},
				"dave": {"auditors", "devs"}, "eve": nil,
			}
			for name, groups := range want {
				if !slices.Equal(users[name].Groups, groups) {
					t.Errorf("%s groups = %v, want %v", name, users[name].Groups, groups)
				}
			}
			wantMembers := map[string][]string{
				"staff": {"alice", "bob", "carol"}, "eng": {"bob", "carol"}, "ops": {"bob", "carol"},
				"devs": {"dave"}, "auditors": {"dave"},
			}
			got := groupMembers(snap, users)
			for g, m := range wantMembers {
				if !slices.Equal(got[g], m) {
					t.Errorf("group %s members = %v, want %v", g, got[g], m)
				}
			}
			for _, g := range snap.Groups {
				if len(g.Key) != 36 {
					t.Errorf("group %s key %q", g.Name, g.Key)
				}
			}
		})
	}
}

func TestFailoverToNextURL(t *testing.T) {
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(baseCfg())})
	st := adminSettings(srv)
	dead := fmt.Sprintf("ldap://127.0.0.1:%d", freeClosedPort(t))
	st.URLs = []string{dead, srv.URL}
	core, logs := observer.New(zap.WarnLevel)
	src, err := New("corp", st, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != 5 {
		t.Fatalf("%d users", len(snap.Users))
	}
	if logs.FilterMessageSnippet("trying the next URL").Len() != 1 {
		t.Errorf("no warning about the dead URL: %v", logs.All())
	}
}

func TestPartialReadsFail(t *testing.T) {
	c := baseCfg()
	ldif := fixtureLDIF(c) + c.User("reader") +
		// A referral in another branch: reading past it would miss whatever
		// lives on the other server.
		"dn: ou=branch," + c.Suffix + "\nobjectClass: organizationalUnit\nou: branch\n\n" +
		"dn: ou=elsewhere,ou=branch," + c.Suffix + "\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\nref: ldap://other.example.test/ou=people,dc=other,dc=test\n\n"
	srv := slapd.Start(t, slapd.Options{LDIF: ldif, Limits: []string{
		`dn.exact="uid=reader,` + c.PeopleDN() + `" size=3`,
	}})
	ctx := context.Background()
	t.Run("size limit", func(t *testing.T) {
		st := adminSettings(srv)
		st.BindDN, st.BindPassword = c.UserDN("reader"), config.NewSecret("pw-reader")
		_, err := newSource(t, st).Pull(ctx)
		if err == nil || !strings.Contains(err.Error(), "Size Limit Exceeded") {
			t.Fatalf("want a size limit error, got %v", err)
		}
	})
	t.Run("referral", func(t *testing.T) {
		st := adminSettings(srv)
		st.Users.BaseDN = srv.Suffix
		_, err := newSource(t, st).Pull(ctx)
		if err == nil || !strings.Contains(err.Error(), "referral") {
			t.Fatalf("want a referral error, got %v", err)
		}
	})
	t.Run("missing base DN", func(t *testing.T) {
		st := adminSettings(srv)
		st.Users.BaseDN = "ou=gone," + srv.Suffix
		_, err := newSource(t, st).Pull(ctx)
		if err == nil || !strings.Contains(err.Error(), "No Such Object") {
			t.Fatalf("want noSuchObject, got %v", err)
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		// A page that does not arrive within request_timeout fails the pull.
		st := adminSettings(srv)
		st.Users.BaseDN, st.Users.Filter = srv.PeopleDN(), "(objectClass=inetOrgPerson)"
		src := newSource(t, st)
		src.s.RequestTimeout = config.Duration(time.Nanosecond)
		_, err := src.Pull(ctx)
		if err == nil {
			t.Fatal("pull with an expired request timeout succeeded")
		}
	})
}

func TestConnectionClosedMidSearch(t *testing.T) {
	c := baseCfg()
	var ldif strings.Builder
	for i := 0; i < 20; i++ {
		ldif.WriteString(c.User(fmt.Sprintf("user%02d", i)))
	}
	srv := slapd.Start(t, slapd.Options{LDIF: ldif.String()})
	st := adminSettings(srv)
	st.PageSize = 5
	src := newSource(t, st)
	src.afterPage = func(what string, page int) {
		if what == "users" && page == 2 {
			srv.Kill()
		}
	}
	snap, err := src.Pull(context.Background())
	if err == nil {
		t.Fatalf("pull survived a killed server with %d users", len(snap.Users))
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error does not say which server: %v", err)
	}
}

func TestBadPasswordNeverLeaks(t *testing.T) {
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(baseCfg())})
	st := adminSettings(srv)
	const pw = "Sup3r-Secret-Value"
	st.BindPassword = config.NewSecret(pw)
	core, logs := observer.New(zap.DebugLevel)
	src, err := New("corp", st, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Pull(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Invalid Credentials") {
		t.Fatalf("want invalid credentials, got %v", err)
	}
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("password in error: %v", err)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), pw) {
			t.Fatalf("password in log line: %v", e)
		}
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v", st, st, st), pw) {
		t.Fatal("password printed with the settings")
	}
}

func TestTLS(t *testing.T) {
	srv := slapd.Start(t, slapd.Options{TLS: true, LDIF: fixtureLDIF(baseCfg())})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		adjust  func(*Settings)
		wantErr string
	}{
		{"starttls with the CA", func(s *Settings) { s.StartTLS = true; s.TLS.CAFile = srv.TLS.CAFile }, ""},
		{"ldaps with the CA", func(s *Settings) { s.URLs = []string{srv.LDAPSURL}; s.TLS.CAFile = srv.TLS.CAFile }, ""},
		{"ldaps without the CA", func(s *Settings) { s.URLs = []string{srv.LDAPSURL} }, "certificate"},
		{"starttls without the CA", func(s *Settings) { s.StartTLS = true }, "certificate"},
		{"wrong server name", func(s *Settings) {
			s.URLs = []string{srv.LDAPSURL}
			s.TLS.CAFile = srv.TLS.CAFile
			s.TLS.ServerName = "intruder.example"
		}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := adminSettings(srv)
			tc.adjust(&st)
			snap, err := newSource(t, st).Pull(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want %q error, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Users) != 5 {
				t.Fatalf("%d users", len(snap.Users))
			}
		})
	}
	t.Run("insecure skip verify is loud", func(t *testing.T) {
		st := adminSettings(srv)
		st.URLs = []string{srv.LDAPSURL}
		st.TLS.InsecureSkipVerify = true
		core, logs := observer.New(zap.WarnLevel)
		src, err := New("corp", st, Options{Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Pull(ctx); err != nil {
			t.Fatal(err)
		}
		if logs.FilterMessageSnippet("WITHOUT certificate verification").Len() == 0 || logs.FilterMessageSnippet("verification is OFF").Len() == 0 {
			t.Fatalf("no warnings: %v", logs.All())
		}
	})
}

// freeClosedPort is a port nobody listens on: FreePort's listener is
// closed on return.
func freeClosedPort(t *testing.T) int { return testenv.FreePort(t) }

func TestInChainRefusedOnOpenLDAP(t *testing.T) {
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(baseCfg())})
	st := adminSettings(srv)
	st.Groups.Nested = nestedInChain // flavour auto: valid until the server says what it is
	_, err := newSource(t, st).Pull(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in_chain needs Active Directory") {
		t.Fatalf("got %v", err)
	}
}
