package allthenticate_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// Which field shows a suspension is learnt from the first toggle of a user
// whom neither field shows suspended, under either reading of the
// document; before that, a user one field shows SUSPENDED is never
// toggled (a skip that says why), and is listed as suspended.
func TestSuspensionFieldLearntUnderEitherReading(t *testing.T) {
	for _, field := range []string{"email_status", "ad_status"} {
		t.Run(field, func(t *testing.T) {
			e := newEnv(t, allthenticatefake.Options{StatusField: field})
			ctx := ctxT(t)
			byHand := seed(e, "byhand@example.test", func(u *allthenticatefake.User) { u.Suspended = true })
			// Unsure: neither toggled back nor counted active.
			err := e.tg.Unsuspend(ctx, &byHand)
			if connector.KindOf(err) != connector.KindSkipped || !strings.Contains(err.Error(), "not known yet") {
				t.Fatalf("unsuspend while unsure: %v", err)
			}
			if err := e.tg.Suspend(ctx, &byHand); connector.KindOf(err) != connector.KindSkipped {
				t.Fatalf("suspend while unsure: %v", err)
			}
			if list, _ := e.tg.List(ctx); len(list) != 1 || !list[0].Suspended {
				t.Fatalf("list while unsure %+v", list)
			}
			// An active user needs no toggle to be active (either reading).
			a := seed(e, "ann@example.test")
			if err := e.tg.Unsuspend(ctx, &a); err != nil {
				t.Fatal(err)
			}
			if n := toggles(e.srv.Calls()); n != 0 {
				t.Fatalf("%d toggles while unsure", n)
			}
			// The first suspension teaches the field, and is kept.
			nctx, notes := connector.WithNotes(ctx)
			if err := e.tg.Suspend(nctx, &a); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(notes.String(), "learnt from this toggle that "+field) {
				t.Fatalf("notes %q", notes)
			}
			if !slices.Contains(e.mem.Keys(), "suspension") {
				t.Fatalf("nothing kept: %v", e.mem.Keys())
			}
			// Now the user suspended by hand can be told, by a new process too.
			restarted, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: e.url, APIKey: config.NewSecret(e.srv.APIKey())}, connector.Deps{Memory: e.mem})
			if err != nil {
				t.Fatal(err)
			}
			if err := restarted.Unsuspend(ctx, &byHand); err != nil {
				t.Fatal(err)
			}
			if err := restarted.Unsuspend(ctx, &a); err != nil {
				t.Fatal(err)
			}
			for _, acc := range []identity.Account{a, byHand} {
				if u, _ := e.srv.User(remote(acc)); u.Suspended || e.srv.Toggles(remote(acc)) != map[bool]int{true: 2, false: 1}[acc.Email == a.Email] {
					t.Fatalf("%s: suspended %v after %d toggles", acc.Email, u.Suspended, e.srv.Toggles(remote(acc)))
				}
			}
		})
	}
}

// A toggle made while learning whose answer is lost: the next process
// learns from the reading kept before it, and does not toggle again.
func TestLostLearningToggleIsLearntByTheNextProcess(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{StatusField: "ad_status"})
	a := seed(e, "di@example.test")
	e.srv.SetFaultAfterApply(true)
	if err := suspendWithToggleFault(t, e, &a, "drop"); connector.KindOf(err) != connector.KindUncertain {
		t.Fatalf("lost toggle: %v", err)
	}
	e.srv.SetFaults(0)
	restarted, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: e.url, APIKey: config.NewSecret(e.srv.APIKey())}, connector.Deps{Memory: e.mem})
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Suspend(ctxT(t), &a); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User(remote(a)); !u.Suspended || e.srv.Toggles(remote(a)) != 1 {
		t.Fatalf("suspended %v after %d toggles", u.Suspended, e.srv.Toggles(remote(a)))
	}
	b := seed(e, "bo@example.test", func(u *allthenticatefake.User) { u.Suspended = true })
	if got, err := restarted.Read(ctxT(t), b); err != nil || !got.Suspended {
		t.Fatalf("learnt field not used: %+v %v", got, err)
	}
}

// atProcess is one dirsync process: a new connector and engine on the
// store and connector memory every process shares.
func atProcess(t *testing.T, url, key string, store state.Store, users ...identity.User) *synctest.Harness {
	t.Helper()
	yaml := fmt.Sprintf("  - name: allthenticate\n    type: allthenticate\n    base_url: %s\n    api_key: %s\n    deprovision: {action: suspend}\n", url, key) + atRulesYAML
	cfg := parseTargets(t, yaml)[0]
	tg, err := allthenticate.Factory(cfg, connector.Deps{HTTPClient: &http.Client{Timeout: 10 * time.Second}, Memory: state.NewConnectorMemory(store, "allthenticate")})
	if err != nil {
		t.Fatal(err)
	}
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(tg, synctest.Common(atRules))}, synctest.Options{Store: store,
		Limits: &config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 5}})
	h.Source.Set(users...)
	return h
}

// Three processes in a row (a new connector each) against a server that
// shows suspension in either field: the leaver is suspended by the first
// and stays suspended through the reconciles of the next two, with one
// toggle in all.
func TestRestartThreeProcessesLeaverStaysSuspended(t *testing.T) {
	for _, field := range []string{"ad_status", "email_status"} {
		t.Run(field, func(t *testing.T) {
			srv, url := allthenticatefake.NewTestServer(t, allthenticatefake.Options{StatusField: field})
			srv.AddUser(allthenticatefake.User{Email: "lea@example.test", FirstName: "Given", LastName: "lea"})
			srv.AddUser(allthenticatefake.User{Email: "stay@example.test", FirstName: "Given", LastName: "stay"})
			store := memstore.New(memstore.Options{JournalSize: 1000})
			leaver := user("lea")
			leaver.Active = false
			for i := 1; i <= 3; i++ {
				h := atProcess(t, url, srv.APIKey(), store, user("stay"), leaver)
				if i == 1 {
					h.Source.Set(user("stay"), user("lea"))
					targettest.RunOK(t, h) // adopts both
					h.Source.Set(user("stay"), leaver)
					targettest.RunOK(t, h)
				} else {
					h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
					targettest.RunOK(t, h)
				}
				u, _ := srv.UserByEmail("lea@example.test")
				s, _ := srv.UserByEmail("stay@example.test")
				if !u.Suspended || srv.Toggles(u.EmailID) != 1 || s.Suspended {
					t.Fatalf("process %d: leaver suspended %v after %d toggles; stayer suspended %v\n%+v", i, u.Suspended, srv.Toggles(u.EmailID), s.Suspended, h.Decisions())
				}
			}
		})
	}
}

// /promoteguest's email_id is "user_id of the user": against a server that
// reads either id, with ids that collide, only the guest meant is ever
// promoted; what the server showed is kept; when both ids would name
// another guest, nobody is promoted.
func TestPromoteGuestUnderEitherReadingWithCollidingIDs(t *testing.T) {
	for _, by := range []string{"email_id", "user_id"} {
		t.Run(by, func(t *testing.T) {
			e := newEnv(t, allthenticatefake.Options{PromoteBy: by, CollidingIDs: true})
			ctx := ctxT(t)
			var ids []int
			for _, n := range []string{"g1", "g2", "g3"} {
				ids = append(ids, e.srv.AddUser(allthenticatefake.User{Email: n + "@example.test", Tag: allthenticatefake.TagGuest}))
			}
			guests := func() []string {
				var out []string
				for _, u := range e.srv.Users() {
					if u.Tag == allthenticatefake.TagGuest {
						out = append(out, u.Email)
					}
				}
				return out
			}
			// g2 (email_id 2, user_id 3): email_id 2 is g1's user_id and
			// user_id 3 is g3's email_id: either id may name another guest.
			g2 := identity.Account{Email: "g2@example.test", Role: "REGULAR"}
			err := e.tg.SetRole(ctx, &g2)
			if connector.KindOf(err) != connector.KindSkipped || !strings.Contains(err.Error(), "not promoting anyone") {
				t.Fatalf("ambiguous promotion: %v", err)
			}
			if g := guests(); len(g) != 3 {
				t.Fatalf("guests after a refused promotion: %v", g)
			}
			// g3 (email_id 3, user_id 4): user_id 4 names no guest by
			// email_id, so it is safe to send under either reading.
			g3 := identity.Account{Email: "g3@example.test", Role: "REGULAR"}
			if err := e.tg.SetRole(ctx, &g3); err != nil {
				t.Fatal(err, seq(e.srv.Calls()), e.srv.Calls())
			}
			if g := guests(); !slices.Equal(g, []string{"g1@example.test", "g2@example.test"}) {
				t.Fatalf("guests after promoting g3: %v", g)
			}
			if !slices.Contains(e.mem.Keys(), "promoteguest") {
				t.Fatal("what /promoteguest reads was not kept")
			}
			// Learnt: g2 is promoted with the right id at once.
			e.srv.ResetCalls()
			if err := e.tg.SetRole(ctx, &g2); err != nil {
				t.Fatal(err)
			}
			var sent []string
			for _, c := range e.srv.Calls() {
				if c.Path == "/promoteguest" {
					sent = append(sent, c.Params["email_id"])
				}
			}
			want := map[string]string{"email_id": "2", "user_id": "3"}[by]
			if !slices.Equal(sent, []string{want}) {
				t.Fatalf("promotion of g2 sent %v, want [%s]", sent, want)
			}
			if g := guests(); !slices.Equal(g, []string{"g1@example.test"}) {
				t.Fatalf("guests %v", g)
			}
		})
	}
}

// DELETE /user also deletes the policies assigned only to that user: the
// decision names the user's policies.
func TestDeleteNamesThePoliciesItTakes(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	a := seed(e, "pat@example.test", func(u *allthenticatefake.User) { u.Policies = []string{"pat-only", "shared"} })
	seed(e, "quin@example.test", func(u *allthenticatefake.User) { u.Policies = []string{"shared"} })
	ctx, notes := connector.WithNotes(context.Background())
	if err := e.tg.Delete(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if n := notes.String(); !strings.Contains(n, "pat-only, shared") || !strings.Contains(n, "assigned to no one else") {
		t.Fatalf("notes %q", n)
	}
	if got := e.srv.DeletedPolicies(); !slices.Equal(got, []string{"pat-only"}) {
		t.Fatalf("deleted policies %v", got)
	}
}
