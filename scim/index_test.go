package scim

import (
	"context"
	"fmt"
	"testing"

	"github.com/dirsync/dirsync/state/memstore"
)

// TestQueryPlans pins which filters the store's indexes answer (the table
// in README.md "Listing at tenant size").
func TestQueryPlans(t *testing.T) {
	users, groups := userType(), groupType()
	cases := []struct {
		rt     *resourceType
		filter string
		kind   string
	}{
		{users, ``, "index"},
		{users, `userName eq "a"`, "index"},
		{users, `UserName sw "a"`, "index"},
		{users, `externalId eq "x"`, "index"},
		{users, `emails.value eq "a@x"`, "index"},
		{users, `emails eq "a@x"`, "index"},
		{users, `active eq true`, "index"},
		{users, `active pr`, "index"},
		{users, `displayName pr`, "index"},
		{users, `meta.lastModified gt "2026-01-01T00:00:00Z"`, "index"},
		{users, `meta.created le 2026-01-01T00:00:00Z`, "index"},
		{users, `urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"`, "index"},
		{users, `userName eq "a" and name.familyName eq "b"`, "index+check"},
		{users, `emails[type eq "work"].value eq "a@x"`, "index+check"},
		{users, `emails[value eq "a@x" and type eq "work"]`, "index+check"},
		{users, `emails.value sw "a"`, "scan"},
		{users, `userName eq "a" or userName eq "b"`, "scan"},
		{users, `userName co "a"`, "scan"},
		{users, `userName ne "a"`, "scan"},
		{users, `name.familyName eq "b"`, "scan"},
		{users, `meta.lastModified gt "yesterday"`, "scan"},
		{users, `groups.display eq "Staff"`, "scan"},
		{groups, `members[value eq "u1"]`, "index+check"},
		{groups, `members.value eq "u1"`, "index"},
		{groups, `displayName eq "Staff"`, "index"},
	}
	for _, c := range cases {
		var f expr
		if c.filter != "" {
			var err error
			if f, err = parseFilter(c.filter, c.rt.urns); err != nil {
				t.Fatalf("%s: %v", c.filter, err)
			}
		}
		if got := c.rt.queryPlan(f).kind; got != c.kind {
			t.Errorf("%s %s: plan %s, want %s", c.rt.name, c.filter, got, c.kind)
		}
	}
}

// TestReindexDataWrittenBeforeIndexing: records stored before the store
// kept indexes (no entries, no marker) are indexed once at start, and then
// list, filter and count like new ones.
func TestReindexDataWrittenBeforeIndexing(t *testing.T) {
	store := memstore.New(memstore.Options{})
	old := newEnv(t, envOpt{store: store})
	for i := range 5 {
		old.createUser(fmt.Sprintf("u%d", i), map[string]any{"active": i%2 == 0})
	}
	old.createGroup("G")
	// Forget every index entry and the marker: the layout of a store
	// written by a version without indexes.
	ctx := context.Background()
	for _, rt := range []*resourceType{old.srv.users, old.srv.groups} {
		for _, sp := range rt.ixs {
			if err := store.KVIndexDrop(ctx, old.srv.bucket(rt), sp.name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := store.KVDelete(ctx, old.srv.metaBucket(), "index", -1); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpt{store: store})
	r := e.must(200, e.do("GET", "/Users?count=2", nil))
	if r.str("totalResults") != "5" || len(asList(r.json["Resources"])) != 2 {
		t.Fatalf("list after re-index: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/Users?filter="+urlQuery(`active eq true`), nil))
	if r.str("totalResults") != "3" {
		t.Fatalf("active eq true after re-index: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/Users?filter="+urlQuery(`userName eq "U3"`), nil))
	if r.str("totalResults") != "1" || r.str("Resources.0.userName") != "u3" {
		t.Fatalf("userName eq after re-index: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/Groups?filter="+urlQuery(`displayName eq "g"`), nil))
	if r.str("totalResults") != "1" {
		t.Fatalf("group after re-index: %s", r.body)
	}
}
