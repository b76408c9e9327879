package scimpull

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testsrv/scimmy"
	"github.com/dirsync/dirsync/internal/testsrv/scimserve"
)

// remote is a SCIM service provider nobody here wrote this source for.
type remote struct {
	base string
}

// call sends one SCIM request and decodes the answer into out (if given).
func (r remote) call(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, r.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b.String())
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func scimUser(i int) map[string]any {
	u := user(i, true)
	delete(u, "meta")
	return u
}

// testPullAndPoll seeds n users and a group, pulls, then deactivates one
// user and adds another to the group at the remote, and checks that one
// poll reports exactly those people, with their new state.
func testPullAndPoll(t *testing.T, r remote, n int) {
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		var out struct{ ID string }
		r.call(t, "POST", "/Users", scimUser(i), &out)
		ids[i] = out.ID
	}
	var g struct{ ID string }
	r.call(t, "POST", "/Groups", map[string]any{
		"schemas":     []any{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "vpn",
		"members":     []any{map[string]any{"value": ids[0]}, map[string]any{"value": ids[1]}},
	}, &g)
	src := newSource(t, r.base, nil)
	snap, err := src.Pull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != n || len(snap.Groups) != 1 || len(snap.Groups[0].Members) != 2 {
		t.Fatalf("pull: %d users, groups %+v", len(snap.Users), snap.Groups)
	}
	// Nothing changed: a poll reports nothing.
	if ch, err := src.Poll(ctx); err != nil || ch != nil {
		t.Fatalf("idle poll: %+v, %v", ch, err)
	}
	time.Sleep(1100 * time.Millisecond) // lastModified and Date have whole seconds on some providers
	r.call(t, "PATCH", "/Users/"+ids[5], map[string]any{
		"schemas":    []any{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": false}},
	}, nil)
	r.call(t, "PATCH", "/Groups/"+g.ID, map[string]any{
		"schemas":    []any{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": ids[7]}}}},
	}, nil)
	ch, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch == nil {
		t.Fatal("poll saw no change")
	}
	got := map[string]bool{}
	for _, u := range ch.Upserts {
		got[u.Key] = true
		switch u.Key {
		case ids[5]:
			if u.Active {
				t.Errorf("user005 still active in the poll's change")
			}
		case ids[7]:
			if len(u.Groups) != 1 || u.Groups[0] != "vpn" {
				t.Errorf("user007 groups %v, want [vpn]", u.Groups)
			}
		}
	}
	if len(got) != 2 || !got[ids[5]] || !got[ids[7]] {
		t.Errorf("poll upserts %v, want exactly user005 and user007", got)
	}
	if len(ch.GroupChanges) != 1 || len(ch.GroupChanges[0].Added) != 1 || ch.GroupChanges[0].Added[0] != ids[7] {
		t.Errorf("group changes %+v", ch.GroupChanges)
	}
	// The same poll again finds nothing new.
	if ch, err := src.Poll(ctx); err != nil || ch != nil {
		t.Fatalf("second poll: %+v, %v", ch, err)
	}
}

func TestPullAndPollDirsyncSCIMServer(t *testing.T) {
	testPullAndPoll(t, remote{base: scimserve.Start(t, token)}, 250)
}

func TestPullAndPollScimmy(t *testing.T) {
	s := scimmy.Start(t, token)
	testPullAndPoll(t, remote{base: s.Base}, 250)
}
