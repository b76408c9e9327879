package scimclient

import (
	"context"
	"fmt"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/scimclient/scimfake"
	"github.com/dirsync/dirsync/identity"
)

// BenchmarkList lists 2,000 users in 50 groups (40 members each) from the
// fake provider, 100 per page, with group membership.
func BenchmarkList(b *testing.B) {
	e := newEnv(b, scimfake.Options{}, "")
	var ids []string
	for i := range 2000 {
		ids = append(ids, e.fake.SeedUser(map[string]any{"userName": fmt.Sprintf("user%04d", i), "active": true,
			"emails": []any{map[string]any{"value": fmt.Sprintf("user%04d@example.test", i), "primary": true}}}))
	}
	for g := range 50 {
		e.fake.SeedGroup(fmt.Sprintf("group%02d", g), ids[g*40:(g+1)*40]...)
	}
	b.ResetTimer()
	for b.Loop() {
		list, err := e.tg.(connector.Lister).List(context.Background())
		if err != nil || len(list) != 2000 {
			b.Fatalf("List: %d, %v", len(list), err)
		}
	}
}

// BenchmarkScimmyCreateSuspend creates and suspends one user per iteration
// in the scimmy peer server (node): the end-to-end cost of a SCIM action.
func BenchmarkScimmyCreateSuspend(b *testing.B) {
	p := startScimmy(b)
	tg := peerTarget(b, p, "manage_groups: false")
	ctx := context.Background()
	i := 0
	for b.Loop() {
		a := identity.Account{Key: fmt.Sprint(i), Username: fmt.Sprintf("bench%06d", i), Email: fmt.Sprintf("bench%06d@example.test", i)}
		i++
		if err := tg.(connector.Creator).Create(ctx, &a); err != nil {
			b.Fatal(err)
		}
		if err := tg.(connector.Suspender).Suspend(ctx, &a); err != nil {
			b.Fatal(err)
		}
	}
}
