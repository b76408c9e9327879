package netmaker_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/identity"
)

// Invariants 11 and 12 at the connector: what Netmaker cannot do for an
// account says so in a way the engine can act on.

// An IdP user's delete, and any delete with the master key, is impossible
// (the engine suspends instead); a protected account's or the
// super-admin's is only declined (nothing else is done either).
func TestDeleteImpossibleVersusDeclined(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	e.srv.AddUser(netmakerfake.User{Username: "gina@example.test", AuthType: "oauth", PlatformRoleID: "platform-user"})
	e.srv.AddUser(netmakerfake.User{Username: "hugo", PlatformRoleID: "platform-user"})
	c := ctx(t)
	// Not known from the cache: found on the read before the delete.
	err := e.tg.Delete(c, &identity.Account{Username: "gina@example.test"})
	if connector.KindOf(err) != connector.KindSkipped || connector.CauseOf(err) != connector.CauseImpossible || !strings.Contains(err.Error(), "cannot delete idp user") {
		t.Fatalf("delete of an IdP user: %v (cause %d)", err, connector.CauseOf(err))
	}
	// Known from the cache: refused before anything is sent.
	gina := identity.Account{Username: "gina@example.test", Remote: map[string]string{"username": "gina@example.test", "auth_type": "oauth"}}
	if err := e.tg.Delete(c, &gina); connector.CauseOf(err) != connector.CauseImpossible {
		t.Fatalf("delete of a cached IdP user: %v", err)
	}
	if err := e.tg.Delete(c, &identity.Account{Username: "netmaker-admin"}); connector.KindOf(err) != connector.KindSkipped || connector.CauseOf(err) == connector.CauseImpossible {
		t.Fatalf("delete of the super-admin: %v", err)
	}
	mk := e.connect(t, e.srv.MasterKey())
	if err := mk.Delete(c, &identity.Account{Username: "hugo"}); connector.CauseOf(err) != connector.CauseImpossible || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("delete with the master key: %v", err)
	}
	for _, call := range e.srv.Calls() {
		if call.Method == http.MethodDelete {
			t.Fatalf("sent %s %s", call.Method, call.Path)
		}
	}
	if _, ok := e.srv.User("hugo"); !ok {
		t.Fatal("hugo deleted")
	}
}

// A user the server lists but cannot read (500 "record not found" for a
// role it does not have) is Unreadable, never NotFound: reads and
// read-modify-writes wait, a delete is impossible (suspend instead), and
// disable still works. A user that is really gone stays NotFound.
func TestUnreadableUserIsNotGoneAtTheConnector(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{Community: true})
	e.srv.AddUser(netmakerfake.User{Username: "pat1", PlatformRoleID: "platform-user"})
	c := ctx(t)
	pat := identity.Account{Username: "pat1", Remote: map[string]string{"username": "pat1"}}
	_, err := e.tg.Read(c, pat)
	if connector.KindOf(err) != connector.KindSkipped || connector.CauseOf(err) != connector.CauseUnreadable || !strings.Contains(err.Error(), "cannot read it back") {
		t.Fatalf("read: %v", err)
	}
	role := pat.Clone()
	role.Role = "admin"
	if err := e.tg.SetRole(c, &role); connector.CauseOf(err) != connector.CauseUnreadable {
		t.Fatalf("set role: %v", err)
	}
	del := pat.Clone()
	if err := e.tg.Delete(c, &del); connector.CauseOf(err) != connector.CauseImpossible {
		t.Fatalf("delete: %v", err)
	}
	// A new connector has listed nothing: the suspend's own read fails,
	// and the list it then reads says pat1 is there and not the owner.
	fresh := e.connect(t, e.token)
	sus := pat.Clone()
	if err := fresh.Suspend(c, &sus); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	if u, _ := e.srv.User("pat1"); !u.AccountDisabled {
		t.Fatal("pat1 not disabled")
	}
	gone := identity.Account{Username: "gone1", Remote: map[string]string{"username": "gone1"}}
	if _, err := e.tg.Read(c, gone); connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("read of a missing user: %v", err)
	}
	// One list a minute at most, however many reads fail.
	e.srv.ResetCalls()
	for range 3 {
		_, _ = e.tg.Read(c, gone)
	}
	lists := 0
	for _, call := range e.srv.Calls() {
		if strings.HasSuffix(call.Path, "/users") && call.Path != "/api/v1/users" {
			lists++
		}
	}
	if lists != 0 {
		t.Fatalf("%d lists for three failed reads within a minute of the last", lists)
	}
}

// Adoption needs only names: a refused create (the master key) is no
// reason not to list; a name Netmaker cannot take is.
func TestCannotHoldOnlyNames(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	mk := e.connect(t, e.srv.MasterKey())
	if why := mk.CannotHold(identity.Account{Username: "erin"}); why != "" {
		t.Fatalf("master key: %q", why)
	}
	if why := mk.Gate(connector.ActCreate, identity.Account{Username: "erin"}); why == "" {
		t.Fatal("the master key may create?")
	}
	if why := mk.CannotHold(identity.Account{Username: "j_d"}); why == "" {
		t.Fatal("an invalid name with no email can be held")
	}
}
