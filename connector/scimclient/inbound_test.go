package scimclient

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/scim"
	"github.com/dirsync/dirsync/state/memstore"
	"go.uber.org/zap"
)

// startInbound serves dirsync's own inbound SCIM server (package scim, on a
// memory store) as a peer provider. Its state is read with plain list
// requests (users carry their computed groups, groups their members).
func startInbound(t *testing.T) peer {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader("sources:\n  - name: idp\n    type: scim\n    tokens: [" + peerToken + "]\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := scim.New(cfg.Sources[0], memstore.New(memstore.Options{}), zap.NewNop())
	if err != nil {
		t.Fatalf("scim.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(srv.MountPath()+"/", srv.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	base := hs.URL + srv.MountPath()
	list := func(t *testing.T, path string) []map[string]any {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path+"?count=1000", nil)
		req.Header.Set("Authorization", "Bearer "+peerToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("list %s: %v", path, err)
		}
		defer resp.Body.Close()
		var lr struct {
			Resources []map[string]any `json:"Resources"`
		}
		if resp.StatusCode != 200 {
			t.Fatalf("list %s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
			t.Fatalf("list %s: %v", path, err)
		}
		return lr.Resources
	}
	return peer{base: base, dump: func(t *testing.T) peerDump {
		return peerDump{Users: list(t, "/Users"), Groups: list(t, "/Groups")}
	}}
}

func TestInboundServerConformance(t *testing.T) {
	p := startInbound(t)
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) connector.Connector { return peerTarget(t, p, "") },
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			return p.dump(t).account(a.Username)
		},
		Secrets: []string{peerToken},
		Groups:  []string{"Engineering", `Sales "EU"`},
	})
}

func TestInboundServerLifecycle(t *testing.T) {
	runLifecycle(t, startInbound(t), func(t *testing.T, p peer, userName string) map[string]any {
		u, _ := p.dump(t).user(userName)
		return u
	})
}
