package scim

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/redisstore"
)

// SCIM resources are source data: they must survive a restart of dirsync
// (and of Redis, with AOF) on both persistent backends.
func TestResourcesSurviveRestart(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) (open func() state.Store, restart func())
	}{
		{"bolt", func(t *testing.T) (func() state.Store, func()) {
			path := filepath.Join(t.TempDir(), "state.db")
			return func() state.Store {
				st, err := bolt.Open(path, bolt.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}, func() {}
		}},
		{"redis", func(t *testing.T) (func() state.Store, func()) {
			srv := redissrv.Start(t, redissrv.Options{AppendOnly: true})
			return func() state.Store {
				st, err := redisstore.New(config.Redis{Addrs: []string{srv.Addr()}, KeyPrefix: "dirsync:"}, redisstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}, srv.Restart
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			open, restart := b.open(t)
			st := open()
			e := newEnv(t, envOpt{store: st})
			ids := map[string]string{}
			for i := range 5 {
				name := fmt.Sprintf("durable%d", i)
				ids[name] = e.createUser(name, map[string]any{"externalId": "x" + name})
			}
			e.must(204, e.do("PATCH", "/Users/"+ids["durable1"], patchBody(op("replace", "active", false))))
			gid := e.createGroup("Keepers", ids["durable0"], ids["durable1"])
			e.must(204, e.do("DELETE", "/Users/"+ids["durable4"], nil))
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			restart()

			st = open()
			t.Cleanup(func() { _ = st.Close() })
			e2 := newEnv(t, envOpt{store: st})
			if err := e2.srv.LoadIndex(context.Background()); err != nil {
				t.Fatal(err)
			}
			snap, err := e2.srv.Pull(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Users) != 4 || len(snap.Groups) != 1 || len(snap.Groups[0].Members) != 2 {
				t.Fatalf("after restart: %d users, groups %+v", len(snap.Users), snap.Groups)
			}
			for _, u := range snap.Users {
				if u.Username == "durable1" && (u.Active || len(u.Groups) != 1) {
					t.Fatalf("durable1 after restart: %+v", u)
				}
			}
			// Uniqueness, lookups and ETags carry on.
			e2.must(409, e2.do("POST", "/Users", map[string]any{"userName": "DURABLE2"}))
			e2.createUser("durable4", nil)
			r := e2.must(200, e2.do("GET", "/Users?filter=externalId+eq+%22xdurable3%22", nil))
			if r.str("Resources.0.id") != ids["durable3"] {
				t.Fatalf("externalId lookup after restart: %s", r.body)
			}
			g := e2.must(200, e2.do("GET", "/Groups/"+gid, nil))
			e2.must(http.StatusPreconditionFailed, e2.do("PATCH", "/Groups/"+gid, patchBody(op("remove", "members", nil)), "If-Match", `W/"99"`))
			e2.must(204, e2.do("PATCH", "/Groups/"+gid, patchBody(op("remove", "members", nil)), "If-Match", g.header.Get("ETag")))
		})
	}
}
