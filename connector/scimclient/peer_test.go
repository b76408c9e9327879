package scimclient

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/scimmy"
)

const peerToken = "peer-tok-31415926"

// peer is a running SCIM service provider the connector is tested against,
// with a way to read what it stores independently of the connector.
type peer struct {
	base string // SCIM root URL
	// dump returns the provider's users and groups as raw resources.
	dump func(t *testing.T) peerDump
}

type peerDump struct {
	Users  []map[string]any `json:"Users"`
	Groups []map[string]any `json:"Groups"`
}

func (d peerDump) user(userName string) (map[string]any, bool) {
	for _, u := range d.Users {
		if strings.EqualFold(str(u["userName"]), userName) {
			return u, true
		}
	}
	return nil, false
}

// groupsOf returns the displayNames of the groups listing id as a member.
func (d peerDump) groupsOf(id string) []string {
	var out []string
	for _, g := range d.Groups {
		for _, m := range arr(g["members"]) {
			if str(obj(m)["value"]) == id {
				out = append(out, str(g["displayName"]))
			}
		}
	}
	return identity.SortedSet(out)
}

func (d peerDump) account(userName string) (identity.Account, bool) {
	u, ok := d.user(userName)
	if !ok {
		return identity.Account{}, false
	}
	return resourceAccount(u, d.groupsOf(str(u["id"]))), true
}

// startScimmy starts the scimmy peer server on a free port and stops it
// when the test ends.
func startScimmy(t testing.TB) peer {
	t.Helper()
	s := scimmy.Start(t, peerToken)
	return peer{base: s.Base, dump: func(t *testing.T) peerDump {
		t.Helper()
		d := s.Dump(t)
		return peerDump{Users: d.Users, Groups: d.Groups}
	}}
}

func peerTarget(t testing.TB, p peer, extra string) connector.Connector {
	t.Helper()
	tg, err := build(t, "base_url: "+p.base+"\nauth: {bearer_token: "+peerToken+"}\nrole_attribute: roles\n"+extra, connector.Deps{})
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	return tg
}

func TestScimmyConformance(t *testing.T) {
	p := startScimmy(t)
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) connector.Connector { return peerTarget(t, p, "") },
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			return p.dump(t).account(a.Username)
		},
		Secrets: []string{peerToken},
		Groups:  []string{"Engineering", "Sales EU"},
	})
}

func TestScimmyLifecycle(t *testing.T) {
	runLifecycle(t, startScimmy(t), func(t *testing.T, p peer, key string) map[string]any {
		u, _ := p.dump(t).user(key)
		return u
	})
}

// runLifecycle drives one account through its whole life against a peer
// provider and checks each step in the provider's own store.
func runLifecycle(t *testing.T, p peer, raw func(t *testing.T, p peer, userName string) map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tg := peerTarget(t, p, "enterprise_attributes: {department: department, employeeNumber: employeeNumber, manager: manager}")
	if err := tg.(connector.Opener).Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	observe := func() identity.Account {
		t.Helper()
		got, ok := p.dump(t).account("jdoe")
		if !ok {
			t.Fatal("jdoe is not in the provider")
		}
		return got
	}
	ent := func() map[string]any {
		return obj(raw(t, p, "jdoe")[entURN])
	}

	boss := identity.Account{Key: "k-boss", Username: "boss", Email: "boss@example.test", GivenName: "Big", FamilyName: "Boss"}
	must("create boss", tg.(connector.Creator).Create(ctx, &boss))

	// In scope → created.
	a := identity.Account{Key: "k-jdoe", Username: "jdoe", Email: "jdoe@example.test", GivenName: "Jane", FamilyName: "Doe", DisplayName: "Jane Doe",
		Attributes: map[string]string{"department": "Engineering", "employeeNumber": "1001", "manager": "boss"}}
	must("Create", tg.(connector.Creator).Create(ctx, &a))
	a.Exists = true
	got := observe()
	if got.Remote["id"] != a.Remote["id"] || got.Email != a.Email || got.GivenName != "Jane" || got.Suspended {
		t.Fatalf("after Create: %+v (Remote %v)", got, a.Remote)
	}
	if e := ent(); e["department"] != "Engineering" || e["employeeNumber"] != "1001" || str(obj(e["manager"])["value"]) != boss.Remote["id"] {
		t.Fatalf("enterprise extension after Create: %v", e)
	}
	if u := raw(t, p, "jdoe"); u["externalId"] != "k-jdoe" {
		t.Fatalf("externalId %v", u["externalId"])
	}

	// Profile change.
	before := a.Clone()
	a.FamilyName, a.DisplayName, a.Email = "Roe", "Jane Roe", "jane.roe@example.test"
	a.Attributes = map[string]string{"department": "Research", "manager": "boss"}
	must("Update", tg.(connector.Updater).Update(ctx, before, &a))
	if got := observe(); got.FamilyName != "Roe" || got.DisplayName != "Jane Roe" || got.Email != "jane.roe@example.test" {
		t.Fatalf("after Update: %+v", got)
	}
	if e := ent(); e["department"] != "Research" || e["employeeNumber"] != nil {
		t.Fatalf("enterprise extension after Update: %v", e)
	}

	// Role change.
	for _, role := range []string{"admin", "user"} {
		a.Role = role
		must("SetRole "+role, tg.(connector.RoleSetter).SetRole(ctx, &a))
		if got := observe(); got.Role != role {
			t.Fatalf("after SetRole(%s): role %q", role, got.Role)
		}
	}

	// Group change: join two groups, then swap one.
	before = a.Clone()
	a.Groups = []string{"Blue", "Green"}
	must("SetGroups", tg.(connector.GroupSetter).SetGroups(ctx, before, &a))
	if got := observe(); !slices.Equal(got.Groups, []string{"Blue", "Green"}) {
		t.Fatalf("after SetGroups: %v", got.Groups)
	}
	before = a.Clone()
	a.Groups = []string{"Green", "Red"}
	must("SetGroups", tg.(connector.GroupSetter).SetGroups(ctx, before, &a))
	if got := observe(); !slices.Equal(got.Groups, []string{"Green", "Red"}) {
		t.Fatalf("after SetGroups: %v", got.Groups)
	}

	// Read and List agree with the provider.
	read, err := tg.(connector.Reader).Read(ctx, a)
	must("Read", err)
	if read.Username != "jdoe" || read.Role != "user" || !slices.Equal(read.Groups, []string{"Green", "Red"}) || read.Attributes["manager"] != "boss" || read.Attributes["department"] != "Research" {
		t.Fatalf("Read: %+v", read)
	}
	list, err := tg.(connector.Lister).List(ctx)
	must("List", err)
	if len(list) != 2 {
		t.Fatalf("List: %d accounts", len(list))
	}

	// Disable → active=false; re-enable.
	must("Suspend", tg.(connector.Suspender).Suspend(ctx, &a))
	if u := raw(t, p, "jdoe"); u["active"] != false {
		t.Fatalf("after Suspend: active %v", u["active"])
	}
	must("Unsuspend", tg.(connector.Suspender).Unsuspend(ctx, &a))
	if u := raw(t, p, "jdoe"); u["active"] != true {
		t.Fatalf("after Unsuspend: active %v", u["active"])
	}

	// A second connector (a restart: empty caches) adopts on create and
	// finds the groups again.
	tg2 := peerTarget(t, p, "")
	again := identity.Account{Key: "k-jdoe", Username: "jdoe", Email: "jane.roe@example.test", GivenName: "Jane", FamilyName: "Roe", DisplayName: "Jane Roe"}
	must("Create (adopt)", tg2.(connector.Creator).Create(ctx, &again))
	if again.Remote["id"] != a.Remote["id"] || len(p.dump(t).Users) != 2 {
		t.Fatalf("adoption: Remote %v, want id %s", again.Remote, a.Remote["id"])
	}
	again.Groups = []string{"Red"}
	must("SetGroups after restart", tg2.(connector.GroupSetter).SetGroups(ctx, identity.Account{Exists: true}, &again))
	if got := observe(); !slices.Equal(got.Groups, []string{"Red"}) {
		t.Fatalf("after SetGroups from an empty cache: %v", got.Groups)
	}

	// Removal.
	must("Delete", tg.(connector.Deleter).Delete(ctx, &a))
	if _, ok := p.dump(t).user("jdoe"); ok {
		t.Fatal("jdoe is still in the provider after Delete")
	}
	err = tg.(connector.Deleter).Delete(ctx, &a)
	if connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("Delete again: %v", err)
	}
	if strings.Contains(err.Error(), peerToken) {
		t.Fatalf("error leaks the token: %v", err)
	}
}
