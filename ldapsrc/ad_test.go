package ldapsrc

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/samba"
)

func adSettings(srv *samba.Server) Settings {
	return Settings{
		URLs:         []string{srv.URL},
		BindDN:       samba.AdminDN,
		BindPassword: config.NewSecret(samba.AdminPassword),
		Users:        Users{BaseDN: "OU=Staff," + samba.BaseDN, ExtraAttributes: []string{"employeeNumber", "objectSid"}},
		Groups:       Groups{BaseDN: "OU=Groups," + samba.BaseDN},
	}
}

var guidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestPullActiveDirectory(t *testing.T) {
	srv := sambaFixtures.Start(t)
	for _, tc := range []struct {
		name   string
		adjust func(*Settings)
	}{
		{"plain", func(*Settings) {}},
		{"ldaps", func(s *Settings) { s.URLs = []string{srv.LDAPSURL}; s.TLS.CAFile = srv.TLS.CAFile }},
		{"starttls, small pages", func(s *Settings) {
			s.StartTLS, s.TLS.CAFile = true, srv.TLS.CAFile
			s.PageSize, s.Groups.PageSize = 2, 1
		}},
		{"in-chain matching rule", func(s *Settings) { s.Groups.Nested = nestedInChain }},
		{"parallel partitions", func(s *Settings) { s.Parallel = 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := adSettings(srv)
			tc.adjust(&st)
			snap, err := newSource(t, st).Pull(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			users := byUsername(snap)
			if len(users) != 5 {
				t.Fatalf("users: %v", users)
			}
			alice := users["alice"]
			if !guidRe.MatchString(alice.Key) || alice.Email != "alice@example.test" || alice.GivenName != "Alice" ||
				alice.FamilyName != "Test" || alice.DisplayName != "Alice Test" || !alice.Active || alice.Expires != nil ||
				alice.MustChangePassword || alice.Attributes["employeeNumber"] != "1001" ||
				!regexp.MustCompile(`^S-1-5-21-\d+-\d+-\d+-\d+$`).MatchString(alice.Attributes["objectSid"]) {
				t.Errorf("alice: %+v", alice)
			}
			if alice.Facts[identity.FactActive] != "userAccountControl ACCOUNTDISABLE not set" {
				t.Errorf("alice facts: %v", alice.Facts)
			}
			if bob := users["bob"]; bob.Active || bob.Facts[identity.FactActive] != "userAccountControl ACCOUNTDISABLE set" {
				t.Errorf("bob (disabled): %+v", bob)
			}
			carol := users["carol"]
			if carol.Expires == nil || !carol.Expires.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) ||
				carol.Facts[identity.FactExpires] != "accountExpires 2026-12-01" {
				t.Errorf("carol (expiring): %+v", carol)
			}
			if dave := users["dave"]; !dave.MustChangePassword || dave.Facts[identity.FactMustChangePassword] != "pwdLastSet=0" {
				t.Errorf("dave (must change): %+v", dave)
			}
			if erin := users["erin"]; !erin.Active || erin.MustChangePassword {
				t.Errorf("erin (locked out, lockout ignored): %+v", erin)
			}
			want := map[string][]string{"alice": {"staff"}, "bob": {"eng", "ops", "staff"}, "carol": {"eng", "ops", "staff"}, "dave": nil}
			for name, groups := range want {
				if !slices.Equal(users[name].Groups, groups) {
					t.Errorf("%s groups = %v, want %v", name, users[name].Groups, groups)
				}
			}
			got := groupMembers(snap, users)
			for g, m := range map[string][]string{"staff": {"alice", "bob", "carol"}, "eng": {"bob", "carol"}, "ops": {"bob", "carol"}} {
				if !slices.Equal(got[g], m) {
					t.Errorf("group %s members = %v, want %v", g, got[g], m)
				}
			}
			for _, g := range snap.Groups {
				if !guidRe.MatchString(g.Key) {
					t.Errorf("group %s key %q", g.Name, g.Key)
				}
			}
		})
	}
}

func TestADLockoutInactive(t *testing.T) {
	srv := sambaFixtures.Start(t)
	st := adSettings(srv)
	st.Users.Lockout = lockoutInactive
	st.Users.Attributes.Username = "userPrincipalName"
	snap, err := newSource(t, st).Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	users := byUsername(snap)
	erin := users["erin@example.test"]
	if erin.Active || erin.Facts[identity.FactActive] != "lockoutTime set (locked out)" {
		t.Fatalf("erin: %+v (users %v)", erin, users)
	}
	if !users["alice@example.test"].Active {
		t.Fatal("alice inactive")
	}
}

func TestADBigGroupRangeRetrieval(t *testing.T) {
	srv := sambaFixtures.Start(t)
	st := adSettings(srv)
	st.Users.BaseDN = "OU=Bulk," + samba.BaseDN
	st.Groups.BaseDN = "OU=BulkGroups," + samba.BaseDN
	st.PageSize = 1000
	src := newSource(t, st)
	snap, err := src.Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != bigGroupSize || len(snap.Groups) != 1 {
		t.Fatalf("%d users, %d groups", len(snap.Users), len(snap.Groups))
	}
	if n := len(identity.SortedSet(snap.Groups[0].Members)); n != bigGroupSize {
		t.Fatalf("big has %d distinct members, want %d", n, bigGroupSize)
	}
	for _, u := range snap.Users {
		if !slices.Equal(u.Groups, []string{"big"}) {
			t.Fatalf("%s groups %v", u.Username, u.Groups)
		}
	}
}

func TestADDomainRoot(t *testing.T) {
	// From the domain root: the referral to the Configuration partition is
	// expected and ignored; primaryGroupID memberships (Domain Users) count.
	srv := sambaFixtures.Start(t)
	st := adSettings(srv)
	st.Users.BaseDN, st.Groups.BaseDN = "", ""
	st.Users.Filter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName=a*))"
	snap, err := newSource(t, st).Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	users := byUsername(snap)
	alice, admin := users["alice"], users["Administrator"]
	if !slices.Contains(alice.Groups, "Domain Users") || !slices.Contains(alice.Groups, "staff") {
		t.Errorf("alice groups %v", alice.Groups)
	}
	if !slices.Contains(admin.Groups, "Domain Admins") || !slices.Contains(admin.Groups, "Domain Users") {
		t.Errorf("Administrator groups %v", admin.Groups)
	}
}
