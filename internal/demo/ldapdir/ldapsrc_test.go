package ldapdir_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/demo/ldapdir"
	"github.com/dirsync/dirsync/ldapsrc"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// The project's LDAP source reads the demo directory as it reads slapd.
func TestLdapsrcPull(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	for _, tc := range []struct {
		name     string
		flavour  string
		parallel int
	}{
		{"openldap", ldapsrc.FlavourOpenLDAP, 1},
		{"auto", ldapsrc.FlavourAuto, 1},
		{"auto parallel", ldapsrc.FlavourAuto, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := pull(t, d, tc.flavour, tc.parallel)
			checkSnapshot(t, snap)
		})
	}
	// A disable in the directory shows in the next pull.
	if err := d.SetDisabled(ldapdir.DemoLeaver, true); err != nil {
		t.Fatal(err)
	}
	u := byUID(pull(t, d, ldapsrc.FlavourAuto, 1))[ldapdir.DemoLeaver]
	if u.Active || u.Facts[identity.FactActive] != "pwdAccountLockedTime set" {
		t.Fatalf("the leaver after the disable: %+v", u)
	}
}

func pull(t *testing.T, d *ldapdir.Dir, flavour string, parallel int) *identity.Snapshot {
	t.Helper()
	src, err := ldapsrc.New("demo-ldap", ldapsrc.Settings{
		URLs:         []string{d.URL()},
		Flavour:      flavour,
		BindDN:       d.BindDN(),
		BindPassword: d.BindPassword(),
		PageSize:     7,
		Parallel:     parallel,
		Users:        ldapsrc.Users{ExtraAttributes: []string{"employeeNumber"}},
		Groups:       ldapsrc.Groups{PageSize: 3},
	}, ldapsrc.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := src.Pull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func byUID(snap *identity.Snapshot) map[string]identity.User {
	m := map[string]identity.User{}
	for _, u := range snap.Users {
		m[u.Username] = u
	}
	return m
}

func checkSnapshot(t *testing.T, snap *identity.Snapshot) {
	t.Helper()
	users := byUID(snap)
	if len(snap.Users) != 51 || len(users) != 51 || len(snap.Groups) != 8 {
		t.Fatalf("%d users (%d distinct), %d groups", len(snap.Users), len(users), len(snap.Groups))
	}
	for _, u := range snap.Users {
		if u.Key == "" || u.Email != u.Username+"@"+ldapdir.MailDomain || u.GivenName == "" || u.FamilyName == "" || u.Attributes["employeeNumber"] == "" {
			t.Errorf("user: %+v", u)
		}
	}
	inactive := []string{}
	for uid, u := range users {
		if !u.Active {
			inactive = append(inactive, uid)
		}
	}
	if !slices.Equal(inactive, []string{ldapdir.DisabledUser}) || users[ldapdir.DisabledUser].Facts[identity.FactActive] != "pwdAccountLockedTime set" {
		t.Errorf("inactive: %v %v", inactive, users[ldapdir.DisabledUser].Facts)
	}
	wantExp := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	if e := users[ldapdir.ExpiringUser].Expires; e == nil || !e.Equal(wantExp) {
		t.Errorf("expiry of %s: %v, want %v", ldapdir.ExpiringUser, e, wantExp)
	}
	for uid, u := range users {
		if (u.Expires != nil) != (uid == ldapdir.ExpiringUser) || u.MustChangePassword != (uid == ldapdir.MustChangeUser) {
			t.Errorf("%s: expires %v, must change %v", uid, u.Expires, u.MustChangePassword)
		}
	}
	if f := users[ldapdir.MustChangeUser].Facts[identity.FactMustChangePassword]; f != "pwdReset: TRUE" {
		t.Errorf("must-change fact: %q", f)
	}
	// Nested groups, resolved by the source.
	for uid, want := range map[string][]string{
		ldapdir.AdminUser:    {ldapdir.GroupITAdmins, ldapdir.GroupNetmakerAdmins, ldapdir.GroupPrinting, ldapdir.GroupStaff, ldapdir.GroupVPNUsers},
		ldapdir.DemoLeaver:   {ldapdir.GroupEngineering, ldapdir.GroupPrinting, ldapdir.GroupStaff, ldapdir.GroupVPNUsers},
		ldapdir.ExpiringUser: {ldapdir.GroupContractors, ldapdir.GroupVPNUsers},
		"elena.petrova":      {ldapdir.GroupPrinting, ldapdir.GroupStaff},
		"priya.natarajan":    {ldapdir.GroupEngineering, ldapdir.GroupNetmakerAdmins, ldapdir.GroupPrinting, ldapdir.GroupStaff, ldapdir.GroupVPNUsers},
		"bianca.costa":       {ldapdir.GroupContractors, ldapdir.GroupPrinting},
	} {
		if got := users[uid].Groups; !slices.Equal(got, want) {
			t.Errorf("groups of %s: %v, want %v", uid, got, want)
		}
	}
	sizes := map[string]int{}
	for _, g := range snap.Groups {
		sizes[g.Name] = len(g.Members)
		ms := slices.Clone(g.Members)
		sort.Strings(ms)
		if len(slices.Compact(ms)) != len(g.Members) {
			t.Errorf("group %s lists a member twice", g.Name)
		}
	}
	want := map[string]int{ldapdir.GroupStaff: 46, ldapdir.GroupEngineering: 20, ldapdir.GroupSales: 12, ldapdir.GroupITAdmins: 4,
		ldapdir.GroupVPNUsers: 29, ldapdir.GroupPrinting: 47, ldapdir.GroupNetmakerAdmins: 5, ldapdir.GroupContractors: 5}
	for g, n := range want {
		if sizes[g] != n {
			t.Errorf("group %s: %d members, want %d", g, sizes[g], n)
		}
	}
}

// cursors keeps ldapsrc's incremental cursors and tells when one is saved.
type cursors struct {
	mu    sync.Mutex
	m     map[string][]byte
	saved chan struct{}
}

func (c *cursors) Cursor(_ context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[name]
	if !ok {
		return nil, state.ErrNotFound
	}
	return v, nil
}

func (c *cursors) PutCursor(_ context.Context, name string, v []byte) error {
	c.mu.Lock()
	c.m[name] = v
	c.mu.Unlock()
	select {
	case c.saved <- struct{}{}:
	default:
	}
	return nil
}

// ldapsrc's modifyTimestamp polling (the incremental mode the demo
// directory supports) sees a disable and a group change.
func TestLdapsrcWatchModifyTimestamp(t *testing.T) {
	d, clk := start(t, ldapdir.Options{})
	cur := &cursors{m: map[string][]byte{}, saved: make(chan struct{}, 1)}
	src, err := ldapsrc.New("demo-ldap", ldapsrc.Settings{
		URLs: []string{d.URL()}, BindDN: d.BindDN(), BindPassword: d.BindPassword(),
		Inc: ldapsrc.Incremental{Mode: ldapsrc.IncModifyTimestamp, PollInterval: config.Duration(20 * time.Millisecond)},
	}, ldapsrc.Options{Logger: zap.NewNop(), Cursors: cur, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan source.Change, 64)
	watchErr := make(chan error, 1)
	go func() { watchErr <- src.Watch(ctx, func(ch source.Change) { changes <- ch }) }()
	defer func() {
		cancel()
		if err := <-watchErr; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	wait := func(what string, ok func(source.Change) bool) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ch := <-changes:
				if ok(ch) {
					return
				}
			case err := <-watchErr:
				t.Fatalf("watch ended waiting for %s: %v", what, err)
			case <-timeout:
				t.Fatalf("no change for %s", what)
			}
		}
	}
	// The first poll records where to start; change the directory after it.
	select {
	case <-cur.saved:
	case err := <-watchErr:
		t.Fatalf("watch: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the first poll saved no cursor")
	}
	clk.Advance(time.Minute)
	if err := d.SetDisabled(ldapdir.DemoLeaver, true); err != nil {
		t.Fatal(err)
	}
	wait("the disable", func(ch source.Change) bool {
		return len(ch.Upserts) == 1 && ch.Upserts[0].Username == ldapdir.DemoLeaver && !ch.Upserts[0].Active &&
			slices.Contains(ch.Upserts[0].Groups, ldapdir.GroupVPNUsers)
	})
	clk.Advance(time.Minute)
	if err := d.SetAttr(ldapdir.GroupDN(ldapdir.GroupContractors), "member", []string{ldapdir.UserDN(ldapdir.ExpiringUser)}); err != nil {
		t.Fatal(err)
	}
	// A membership change is resolved to the members it touches (or, when
	// it cannot be, asks for a full pull).
	wait("the group change", func(ch source.Change) bool {
		if ch.Full {
			return true
		}
		for _, g := range ch.GroupChanges {
			if g.Name == ldapdir.GroupContractors && len(g.Added)+len(g.Removed) > 0 {
				return true
			}
		}
		return false
	})
}
