package ldapdir_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/internal/demo/ldapdir"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const adminPassword = "s3cret-Adm1n-pw"

// clock is a settable clock for the directory's timestamps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var seedTime = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func start(t *testing.T, o ldapdir.Options) (*ldapdir.Dir, *clock) {
	t.Helper()
	clk := &clock{t: seedTime}
	if o.Now == nil {
		o.Now = clk.Now
	}
	if o.BindPassword.IsZero() {
		o.BindPassword = config.NewSecret(adminPassword)
	}
	d, err := ldapdir.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d, clk
}

func dial(t *testing.T, d *ldapdir.Dir, bind bool) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if bind {
		if err := c.Bind(d.BindDN(), d.BindPassword().Value()); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func search(base string, scope int, filter string, attrs ...string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
}

func uids(entries []*ldap.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.GetAttributeValue("uid"))
	}
	sort.Strings(out)
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func TestBind(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, false)
	if err := c.Bind(d.BindDN(), "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bad password: %v, want invalidCredentials", err)
	}
	if err := c.Bind("cn=nobody,"+ldapdir.BaseDN, adminPassword); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("unknown DN: %v, want invalidCredentials", err)
	}
	if _, err := c.SimpleBind(&ldap.SimpleBindRequest{Username: d.BindDN(), AllowEmptyPassword: true}); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Fatalf("DN without password: %v, want unwillingToPerform", err)
	}
	// After failed binds the connection is anonymous: no entries.
	if _, err := c.Search(search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)")); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Fatalf("anonymous search: %v, want insufficientAccessRights", err)
	}
	// The bind DN compares as a DN: case and spaces do not matter.
	if err := c.Bind("CN=Admin, DC=demo,DC=TEST", adminPassword); err != nil {
		t.Fatalf("admin bind: %v", err)
	}
	res, err := c.Search(search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)", "uid"))
	if err != nil || len(res.Entries) != 51 {
		t.Fatalf("bound search: %d entries, %v", len(res.Entries), err)
	}
	// An anonymous bind drops the admin's rights.
	if err := c.UnauthenticatedBind(""); err != nil {
		t.Fatalf("anonymous bind: %v", err)
	}
	if _, err := c.Search(search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)")); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Fatalf("search after anonymous bind: %v", err)
	}
}

func TestAnonymousAllowed(t *testing.T) {
	d, _ := start(t, ldapdir.Options{AllowAnonymous: true})
	c := dial(t, d, false)
	res, err := c.Search(search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid="+ldapdir.DemoLeaver+")", "uid"))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("anonymous search: %v %v", res, err)
	}
}

func TestRandomPassword(t *testing.T) {
	d, err := ldapdir.Start(ldapdir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.BindPassword().IsZero() || d.BindDN() != ldapdir.DefaultBindDN || !strings.HasPrefix(d.URL(), "ldap://127.0.0.1:") {
		t.Fatalf("defaults: %s %s", d.BindDN(), d.URL())
	}
	dial(t, d, true)
}

func TestPagedSearch(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	req := search(ldapdir.BaseDN, ldap.ScopeWholeSubtree, "(objectClass=inetOrgPerson)", "uid")
	seen := map[string]int{}
	var cookie []byte
	pages := 0
	for {
		pages++
		paging := ldap.NewControlPaging(7)
		paging.SetCookie(cookie)
		req.Controls = []ldap.Control{paging}
		res, err := c.Search(req)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(res.Entries) > 7 {
			t.Fatalf("page %d has %d entries", pages, len(res.Entries))
		}
		for _, e := range res.Entries {
			seen[e.GetAttributeValue("uid")]++
		}
		ctl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok {
			t.Fatalf("page %d: no paging control in the response", pages)
		}
		cookie = ctl.Cookie
		if len(cookie) == 0 {
			if len(res.Entries) == 0 {
				t.Fatalf("page %d: an empty last page", pages)
			}
			break
		}
		if len(res.Entries) != 7 {
			t.Fatalf("page %d: %d entries with more to come", pages, len(res.Entries))
		}
	}
	if len(seen) != 51 || pages != 8 {
		t.Fatalf("%d people in %d pages, want 51 in 8", len(seen), pages)
	}
	for uid, n := range seen {
		if n != 1 {
			t.Errorf("%s returned %d times", uid, n)
		}
	}
	// go-ldap's own paging loop agrees.
	res, err := c.SearchWithPaging(search(ldapdir.BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)", "1.1"), 7)
	if err != nil || len(res.Entries) != 62 {
		t.Fatalf("SearchWithPaging: %d entries, %v", len(res.Entries), err)
	}
}

func TestPagingCookieChecks(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	first := search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)", "uid")
	first.Controls = []ldap.Control{ldap.NewControlPaging(5)}
	res, err := c.Search(first)
	if err != nil {
		t.Fatal(err)
	}
	cookie := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging).Cookie
	// The cookie of one search is refused for another.
	other := search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(mail=*)", "uid")
	p := ldap.NewControlPaging(5)
	p.SetCookie(cookie)
	other.Controls = []ldap.Control{p}
	if _, err := c.Search(other); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Fatalf("foreign cookie: %v, want unwillingToPerform", err)
	}
	// A page size of 0 abandons the paged search: no entries, no cookie.
	p = ldap.NewControlPaging(0)
	p.SetCookie(cookie)
	first.Controls = []ldap.Control{p}
	res, err = c.Search(first)
	if err != nil || len(res.Entries) != 0 || len(ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging).Cookie) != 0 {
		t.Fatalf("abandon: %d entries, %v", len(res.Entries), err)
	}
}

// A person changed between two pages is still returned exactly once.
func TestPagingSurvivesChanges(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	req := search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(!(pwdAccountLockedTime=*))", "uid")
	req.Controls = []ldap.Control{ldap.NewControlPaging(10)}
	res, err := c.Search(req)
	if err != nil {
		t.Fatal(err)
	}
	got := uids(res.Entries)
	// Lock someone already returned and someone not yet returned.
	if err := d.SetDisabled(res.Entries[0].GetAttributeValue("uid"), true); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDisabled("zoe.papadopoulos", true); err != nil {
		t.Fatal(err)
	}
	cookie := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging).Cookie
	for len(cookie) > 0 {
		p := ldap.NewControlPaging(10)
		p.SetCookie(cookie)
		req.Controls = []ldap.Control{p}
		if res, err = c.Search(req); err != nil {
			t.Fatal(err)
		}
		got = append(got, uids(res.Entries)...)
		cookie = ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging).Cookie
	}
	if len(got) != 49 || slices.Contains(got, "zoe.papadopoulos") || slices.Contains(got, ldapdir.DisabledUser) {
		t.Fatalf("got %d people: %v", len(got), got)
	}
}

func TestFilters(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	everyone := uids(mustSearch(t, c, search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(objectClass=*)", "uid")))
	except := func(out ...string) []string {
		var r []string
		for _, u := range everyone {
			if !slices.Contains(out, u) {
				r = append(r, u)
			}
		}
		return r
	}
	expire := strconv.FormatInt(seedTime.Unix()/86400+ldapdir.ExpiryDays, 10)
	itAdmins := []string{"anna.kowalski", ldapdir.AdminUser, "mateo.garcia", "yusuf.demir"}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"(&(objectClass=inetOrgPerson)(uid=a*))", []string{"ahmed.hassan", "aisha.bello", "amara.nwosu", "anna.kowalski"}},
		{"(|(mail=SAM.Rivera@Demo.Test)(uid=" + ldapdir.AdminUser + "))", []string{ldapdir.AdminUser, ldapdir.DemoLeaver}},
		{"(!(pwdAccountLockedTime=*))", except(ldapdir.DisabledUser)},
		{"(pwdAccountLockedTime=*)", []string{ldapdir.DisabledUser}},
		{"(pwdReset=true)", []string{ldapdir.MustChangeUser}},
		{"(objectClass=INETORGPERSON)", everyone},
		{"(cn=  sam   RIVERA )", []string{ldapdir.DemoLeaver}},
		{"(sn=*son)", []string{"ben.thompson", "emma.johansson", "erik.andersson"}},
		{"(cn=*ann*a*)", []string{"hannah.schmidt", "anna.kowalski"}},
		{"(mail=*@demo.test)", everyone},
		{"(uid=*)", everyone},
		{"(nonexistent=*)", nil},
		{"(memberOf=cn=IT-Admins, ou=Groups,dc=demo,dc=test)", itAdmins},
		{"(&(memberOf=" + ldapdir.GroupDN(ldapdir.GroupEngineering) + ")(title=*Frontend*))", []string{"leila.karimi", "sofia.rossi"}},
		{"(shadowExpire>=" + expire + ")", []string{ldapdir.ExpiringUser}},
		{"(shadowExpire<=100)", nil},
		{"(uidNumber>=10050)", []string{"bianca.costa", "oscar.lind"}},
		{"(uidNumber<=10002)", []string{ldapdir.MustChangeUser, ldapdir.DemoLeaver}},
		{"(uidNumber<=9)", nil}, // numeric, not string, ordering
		{"(employeeNumber>=C)", []string{"bianca.costa", "felix.wagner", ldapdir.ExpiringUser, "nadia.rahman", "oscar.lind"}},
		{"(modifyTimestamp>=20260302093000Z)", everyone},
		{"(modifyTimestamp>=20260302093001Z)", nil},
		{"(givenName~=tomáš)", []string{"tomas.novak"}},
		// Undefined stays undefined under not (RFC 4511 4.5.1.7).
		{"(!(shadowExpire>=soon))", nil},
		{"(!(memberOf>=cn=a))", nil}, // no ordering rule for DNs
		{"(&)", everyone},
		{"(|)", nil},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			got := uids(mustSearch(t, c, search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, tc.filter, "uid")))
			if !slices.Equal(got, sorted(tc.want...)) {
				t.Fatalf("%s\n got %v\nwant %v", tc.filter, got, sorted(tc.want...))
			}
		})
	}
	// Groups by member DN, with the member spelled differently.
	res := mustSearch(t, c, search(ldapdir.GroupsDN, ldap.ScopeSingleLevel, "(member=UID=sam.rivera, ou=People,dc=demo,dc=test)", "cn"))
	if len(res) != 1 || res[0].GetAttributeValue("cn") != ldapdir.GroupEngineering {
		t.Fatalf("groups of sam: %v", res)
	}
	// entryUUID ranges (how ldapsrc partitions a read) cover everyone once.
	lo := uids(mustSearch(t, c, search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(!(entryUUID>=80000000-0000-0000-0000-000000000000))", "uid")))
	hi := uids(mustSearch(t, c, search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(entryUUID>=80000000-0000-0000-0000-000000000000)", "uid")))
	if len(lo) == 0 || len(hi) == 0 || !slices.Equal(sorted(append(lo, hi...)...), everyone) {
		t.Fatalf("entryUUID partitions: %d + %d", len(lo), len(hi))
	}
	// Extensible match is refused, not guessed.
	_, err := c.Search(search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(memberOf:1.2.840.113556.1.4.1941:="+ldapdir.GroupDN(ldapdir.GroupStaff)+")"))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInappropriateMatching) {
		t.Fatalf("extensible match: %v, want inappropriateMatching", err)
	}
}

func mustSearch(t *testing.T, c *ldap.Conn, req *ldap.SearchRequest) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(req)
	if err != nil {
		t.Fatalf("search %s: %v", req.Filter, err)
	}
	return res.Entries
}

func attrNames(e *ldap.Entry) []string {
	var out []string
	for _, a := range e.Attributes {
		out = append(out, a.Name)
	}
	sort.Strings(out)
	return out
}

func TestAttributeSelection(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	dn := ldapdir.UserDN(ldapdir.DemoLeaver)
	get := func(typesOnly bool, attrs ...string) *ldap.Entry {
		t.Helper()
		req := search(dn, ldap.ScopeBaseObject, "(objectClass=*)", attrs...)
		req.TypesOnly = typesOnly
		es := mustSearch(t, c, req)
		if len(es) != 1 {
			t.Fatalf("%v: %d entries", attrs, len(es))
		}
		return es[0]
	}
	user := []string{"cn", "displayName", "employeeNumber", "gidNumber", "givenName", "homeDirectory", "loginShell", "mail",
		"objectClass", "sn", "title", "uid", "uidNumber"}
	if got := attrNames(get(false)); !slices.Equal(got, user) {
		t.Fatalf("no list: %v", got)
	}
	if got := attrNames(get(false, "*")); !slices.Equal(got, user) {
		t.Fatalf("*: %v", got)
	}
	op := []string{"createTimestamp", "creatorsName", "entryCSN", "entryDN", "entryUUID", "hasSubordinates", "memberOf",
		"modifiersName", "modifyTimestamp", "structuralObjectClass", "subschemaSubentry"}
	if got := attrNames(get(false, "+")); !slices.Equal(got, op) {
		t.Fatalf("+: %v", got)
	}
	if got := attrNames(get(false, "*", "+")); len(got) != len(user)+len(op) {
		t.Fatalf("* +: %v", got)
	}
	if got := attrNames(get(false, "1.1")); len(got) != 0 {
		t.Fatalf("1.1: %v", got)
	}
	e := get(false, "UID", "memberof", "entryUUID", "missing")
	if got := attrNames(e); !slices.Equal(got, []string{"entryUUID", "memberOf", "uid"}) {
		t.Fatalf("named: %v", got)
	}
	if e.GetAttributeValue("memberOf") != ldapdir.GroupDN(ldapdir.GroupEngineering) || len(e.GetAttributeValue("entryUUID")) != 36 {
		t.Fatalf("values: %v", e.Attributes)
	}
	e = get(true, "uid", "mail")
	if got := attrNames(e); !slices.Equal(got, []string{"mail", "uid"}) || len(e.GetAttributeValues("uid")) != 0 {
		t.Fatalf("types only: %v", e.Attributes)
	}
}

func TestRootDSE(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, false) // readable anonymously
	es := mustSearch(t, c, search("", ldap.ScopeBaseObject, "(objectClass=*)"))
	if len(es) != 1 || !slices.Equal(attrNames(es[0]), []string{"objectClass"}) {
		t.Fatalf("root DSE without a list: %v", es)
	}
	e := mustSearch(t, c, search("", ldap.ScopeBaseObject, "(objectClass=*)", "namingContexts", "defaultNamingContext",
		"supportedCapabilities", "supportedControl", "isGlobalCatalogReady", "dsServiceName", "highestCommittedUSN", "objectClass", "+"))[0]
	if got := e.GetAttributeValues("namingContexts"); !slices.Equal(got, []string{ldapdir.BaseDN}) {
		t.Fatalf("namingContexts: %v", got)
	}
	if !slices.Contains(e.GetAttributeValues("supportedControl"), "1.2.840.113556.1.4.319") {
		t.Fatalf("supportedControl: %v", e.GetAttributeValues("supportedControl"))
	}
	for _, ad := range []string{"defaultNamingContext", "supportedCapabilities", "isGlobalCatalogReady", "dsServiceName", "highestCommittedUSN"} {
		if len(e.GetAttributeValues(ad)) != 0 {
			t.Errorf("an Active Directory marker: %s", ad)
		}
	}
	if !slices.Contains(e.GetAttributeValues("objectClass"), "OpenLDAProotDSE") {
		t.Errorf("objectClass: %v", e.GetAttributeValues("objectClass"))
	}
	if _, err := c.Search(search("", ldap.ScopeWholeSubtree, "(objectClass=*)")); !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) &&
		!ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Fatalf("subtree search of the root: %v", err)
	}
}

func TestScopes(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	for _, tc := range []struct {
		base  string
		scope int
		want  int
	}{
		{ldapdir.BaseDN, ldap.ScopeBaseObject, 1},
		{ldapdir.BaseDN, ldap.ScopeSingleLevel, 2},
		{ldapdir.BaseDN, ldap.ScopeWholeSubtree, 62},
		{ldapdir.BaseDN, ldap.ScopeChildren, 61},
		{ldapdir.GroupsDN, ldap.ScopeSingleLevel, 8},
		{"OU=People, DC=Demo, DC=Test", ldap.ScopeWholeSubtree, 52},
		{ldapdir.UserDN(ldapdir.AdminUser), ldap.ScopeSingleLevel, 0},
	} {
		es := mustSearch(t, c, search(tc.base, tc.scope, "(objectClass=*)", "1.1"))
		if len(es) != tc.want {
			t.Errorf("%s scope %d: %d entries, want %d", tc.base, tc.scope, len(es), tc.want)
		}
	}
	res, err := c.Search(search("uid=nobody,"+ldapdir.PeopleDN, ldap.ScopeBaseObject, "(objectClass=*)"))
	var le *ldap.Error
	if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultNoSuchObject || le.MatchedDN != ldapdir.PeopleDN {
		t.Fatalf("missing base: %v %v", res, err)
	}
}

func TestSizeLimit(t *testing.T) {
	d, _ := start(t, ldapdir.Options{SizeLimit: 10})
	c := dial(t, d, true)
	// The client's limit, below the server's.
	req := search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)", "uid")
	req.SizeLimit = 3
	res, err := c.Search(req)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || len(res.Entries) != 3 {
		t.Fatalf("client limit: %d entries, %v", len(res.Entries), err)
	}
	// A limit that is not passed is not an error.
	req.SizeLimit = 51
	req.Filter = "(uidNumber>=10045)"
	if es := mustSearch(t, c, req); len(es) != 7 {
		t.Fatalf("under the limit: %d entries", len(es))
	}
	// The server's limit counts every page of a paged search.
	_, err = c.SearchWithPaging(search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)", "uid"), 4)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Fatalf("paged past the server's limit: %v", err)
	}
}

func TestReadOnlyOverLDAP(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	m := ldap.NewModifyRequest(ldapdir.UserDN(ldapdir.DemoLeaver), nil)
	m.Replace("pwdAccountLockedTime", []string{ldapdir.LockedTime})
	if err := c.Modify(m); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Fatalf("modify: %v", err)
	}
	if err := c.Del(ldap.NewDelRequest(ldapdir.UserDN(ldapdir.DemoLeaver), nil)); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Fatalf("delete: %v", err)
	}
	// The connection still serves.
	if es := mustSearch(t, c, search(ldapdir.UserDN(ldapdir.DemoLeaver), ldap.ScopeBaseObject, "(!(pwdAccountLockedTime=*))")); len(es) != 1 {
		t.Fatalf("after refused writes: %v", es)
	}
}

func TestSetDisabled(t *testing.T) {
	d, clk := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	clk.Advance(time.Hour)
	if err := d.SetDisabled(ldapdir.DemoLeaver, true); err != nil {
		t.Fatal(err)
	}
	es := mustSearch(t, c, search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(pwdAccountLockedTime=*)", "uid", "pwdAccountLockedTime"))
	if got := uids(es); !slices.Equal(got, sorted(ldapdir.DemoLeaver, ldapdir.DisabledUser)) {
		t.Fatalf("locked: %v", got)
	}
	// Only the changed entry is newer than the seed (what modifyTimestamp polling finds).
	changed := mustSearch(t, c, search(ldapdir.BaseDN, ldap.ScopeWholeSubtree, "(modifyTimestamp>=20260302103000Z)", "uid", "modifyTimestamp", "entryCSN"))
	if len(changed) != 1 || changed[0].GetAttributeValue("uid") != ldapdir.DemoLeaver ||
		changed[0].GetAttributeValue("modifyTimestamp") != "20260302103000Z" || !strings.HasPrefix(changed[0].GetAttributeValue("entryCSN"), "20260302103000.") {
		t.Fatalf("changed since the disable: %v", changed)
	}
	// Setting the same state again changes nothing.
	clk.Advance(time.Hour)
	if err := d.SetDisabled(ldapdir.DemoLeaver, true); err != nil {
		t.Fatal(err)
	}
	if es := mustSearch(t, c, search(ldapdir.BaseDN, ldap.ScopeWholeSubtree, "(modifyTimestamp>=20260302113000Z)")); len(es) != 0 {
		t.Fatalf("a no-op touched %d entries", len(es))
	}
	if err := d.SetDisabled(ldapdir.DemoLeaver, false); err != nil {
		t.Fatal(err)
	}
	if es := mustSearch(t, c, search(ldapdir.UserDN(ldapdir.DemoLeaver), ldap.ScopeBaseObject, "(pwdAccountLockedTime=*)")); len(es) != 0 {
		t.Fatalf("still locked: %v", es)
	}
	if err := d.SetDisabled("no.body", true); err == nil || !strings.Contains(err.Error(), `ldapdir: disable "no.body"`) {
		t.Fatalf("unknown uid: %v", err)
	}
}

func TestUsers(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	people := d.Users()
	if len(people) != 51 {
		t.Fatalf("%d people", len(people))
	}
	by := map[string]ldapdir.Person{}
	keys := map[string]bool{}
	for _, p := range people {
		by[p.UID] = p
		keys[p.Key] = true
		if p.Email != p.UID+"@"+ldapdir.MailDomain || p.DN != ldapdir.UserDN(p.UID) || len(p.Key) != 36 {
			t.Errorf("person: %+v", p)
		}
	}
	if len(keys) != 51 {
		t.Fatalf("keys are not unique")
	}
	if !by[ldapdir.DisabledUser].Disabled || by[ldapdir.DemoLeaver].Disabled {
		t.Errorf("disabled: %+v %+v", by[ldapdir.DisabledUser], by[ldapdir.DemoLeaver])
	}
	wantExp := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	if e := by[ldapdir.ExpiringUser].Expires; e == nil || !e.Equal(wantExp) {
		t.Errorf("expiry: %v, want %v", e, wantExp)
	}
	if !by[ldapdir.MustChangeUser].MustChangePassword {
		t.Errorf("must change: %+v", by[ldapdir.MustChangeUser])
	}
	if got := by[ldapdir.AdminUser].Groups; !slices.Equal(got, []string{ldapdir.GroupITAdmins}) {
		t.Errorf("admin's direct groups: %v", got)
	}
	if got := by["emma.johansson"].Groups; !slices.Equal(got, []string{ldapdir.GroupSales, ldapdir.GroupVPNUsers}) {
		t.Errorf("emma's direct groups: %v", got)
	}
	// Keys are stable across starts.
	d2, _ := start(t, ldapdir.Options{})
	if d2.Users()[0].Key != people[0].Key {
		t.Errorf("entryUUID changed between starts")
	}
}

func TestGroupChanges(t *testing.T) {
	d, clk := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	clk.Advance(time.Minute)
	// Move the leaver from engineering to sales: memberOf follows, and the
	// person's entry counts as modified.
	eng, _ := d.Entry(ldapdir.GroupDN(ldapdir.GroupEngineering))
	var members []string
	for _, m := range eng.Get("member") {
		if m != ldapdir.UserDN(ldapdir.DemoLeaver) {
			members = append(members, m)
		}
	}
	if err := d.SetAttr(ldapdir.GroupDN(ldapdir.GroupEngineering), "member", members); err != nil {
		t.Fatal(err)
	}
	sales, _ := d.Entry(ldapdir.GroupDN(ldapdir.GroupSales))
	if err := d.SetAttr(ldapdir.GroupDN(ldapdir.GroupSales), "member", append(sales.Get("member"), ldapdir.UserDN(ldapdir.DemoLeaver))); err != nil {
		t.Fatal(err)
	}
	e := mustSearch(t, c, search(ldapdir.UserDN(ldapdir.DemoLeaver), ldap.ScopeBaseObject, "(objectClass=*)", "memberOf", "modifyTimestamp"))[0]
	if got := e.GetAttributeValues("memberOf"); !slices.Equal(got, []string{ldapdir.GroupDN(ldapdir.GroupSales)}) || e.GetAttributeValue("modifyTimestamp") != "20260302093100Z" {
		t.Fatalf("after the move: %v", e.Attributes)
	}
	// Directory-maintained attributes and passwords are refused.
	for _, attr := range []string{"memberOf", "entryUUID", "modifyTimestamp", "userPassword"} {
		if err := d.SetAttr(ldapdir.UserDN(ldapdir.DemoLeaver), attr, []string{"x"}); err == nil {
			t.Errorf("set %s: accepted", attr)
		}
	}
	if err := d.SetAttr(ldapdir.UserDN(ldapdir.DemoLeaver), "uid", []string{"someone.else"}); err == nil {
		t.Errorf("changing the RDN value: accepted")
	}
	if err := d.SetAttr("uid=nobody,"+ldapdir.PeopleDN, "mail", []string{"x@y"}); err == nil || !strings.HasPrefix(err.Error(), "ldapdir: set mail on") {
		t.Errorf("unknown entry: %v", err)
	}
	// Add and delete: deleting a person removes them from their groups (refint).
	err := d.Add(ldapdir.Entry{DN: ldapdir.UserDN("new.hire"), Attrs: []ldapdir.Attr{
		{Name: "objectClass", Values: []string{"inetOrgPerson"}}, {Name: "uid", Values: []string{"new.hire"}},
		{Name: "cn", Values: []string{"New Hire"}}, {Name: "sn", Values: []string{"Hire"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ldapdir.UserDN(ldapdir.DemoLeaver)); err != nil {
		t.Fatal(err)
	}
	if es := mustSearch(t, c, search(ldapdir.GroupsDN, ldap.ScopeSingleLevel, "(member="+ldapdir.UserDN(ldapdir.DemoLeaver)+")")); len(es) != 0 {
		t.Fatalf("still a member of %d groups", len(es))
	}
	if got := len(d.Users()); got != 51 {
		t.Fatalf("%d people after one add and one delete", got)
	}
	if err := d.Delete(ldapdir.PeopleDN); err == nil {
		t.Fatalf("deleted an entry with children")
	}
}

func TestSeed(t *testing.T) {
	seed := ldapdir.DemoSeed(seedTime)
	people, groups := 0, map[string][]string{}
	for _, e := range seed {
		switch {
		case strings.HasSuffix(e.DN, ","+ldapdir.PeopleDN):
			people++
		case strings.HasSuffix(e.DN, ","+ldapdir.GroupsDN):
			groups[e.First("cn")] = e.Get("member")
		}
	}
	if people != 51 || len(groups) != 8 {
		t.Fatalf("%d people, %d groups", people, len(groups))
	}
	nested := 0
	for _, ms := range groups {
		for _, m := range ms {
			if strings.HasSuffix(m, ","+ldapdir.GroupsDN) {
				nested++
			}
		}
	}
	if nested < 5 || !slices.Contains(groups[ldapdir.GroupNetmakerAdmins], ldapdir.GroupDN(ldapdir.GroupITAdmins)) {
		t.Fatalf("nesting: %d nested memberships", nested)
	}
}

// Errors in the log and responses never carry the admin password.
func TestPasswordNeverLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	d, _ := start(t, ldapdir.Options{Logger: zap.New(core)})
	c := dial(t, d, false)
	for _, pw := range []string{"wrong", adminPassword} {
		if err := c.Bind(d.BindDN(), pw); err != nil && strings.Contains(err.Error(), adminPassword) {
			t.Fatalf("the password in an error: %v", err)
		}
	}
	c.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if logs.Len() == 0 {
		t.Fatalf("nothing logged: the check would prove nothing")
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, adminPassword) {
			t.Fatalf("the password in a log line: %s", line)
		}
	}
	if s := fmt.Sprintf("%v %+v", d.BindPassword(), d.BindPassword()); strings.Contains(s, adminPassword) {
		t.Fatalf("BindPassword prints its value: %s", s)
	}
}

func TestStartErrors(t *testing.T) {
	for name, o := range map[string]ldapdir.Options{
		"bad bind DN":   {BindDN: "not a dn"},
		"no parent":     {Entries: []ldapdir.Entry{{DN: "dc=x", Attrs: []ldapdir.Attr{{Name: "objectClass", Values: []string{"domain"}}, {Name: "dc", Values: []string{"x"}}}}, {DN: "cn=a,ou=missing,dc=x", Attrs: []ldapdir.Attr{{Name: "objectClass", Values: []string{"person"}}, {Name: "cn", Values: []string{"a"}}}}}},
		"bad member":    {Entries: []ldapdir.Entry{{DN: "dc=x", Attrs: []ldapdir.Attr{{Name: "objectClass", Values: []string{"domain"}}, {Name: "dc", Values: []string{"x"}}, {Name: "member", Values: []string{"not a dn"}}}}}},
		"negative size": {SizeLimit: -1},
		"address taken": {Addr: "256.0.0.1:1"},
	} {
		if d, err := ldapdir.Start(o); err == nil || !strings.HasPrefix(err.Error(), "ldapdir: ") {
			if d != nil {
				d.Close()
			}
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An unsupported critical control (syncrepl's) is refused, not ignored;
// a non-critical one is ignored.
func TestCriticalControls(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c := dial(t, d, true)
	req := search(ldapdir.PeopleDN, ldap.ScopeSingleLevel, "(uid=*)", "1.1")
	req.Controls = []ldap.Control{ldap.NewControlString("1.3.6.1.4.1.4203.1.9.1.1", true, "")}
	if _, err := c.Search(req); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailableCriticalExtension) {
		t.Fatalf("critical syncrepl control: %v", err)
	}
	req.Controls = []ldap.Control{ldap.NewControlString("1.3.6.1.4.1.4203.1.9.1.1", false, "")}
	if es := mustSearch(t, c, req); len(es) != 51 {
		t.Fatalf("non-critical control: %d entries", len(es))
	}
}
