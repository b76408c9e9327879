package ezeelogin_test

import (
	"github.com/dirsync/dirsync/connector/targettest"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeelogin"
)

func parseTargets(t *testing.T, yaml string) []config.Target { return targettest.ParseTargets(t, yaml) }

// The documented sample parses, passes the factory, and its secret comes
// from the environment.
func TestSampleBuilds(t *testing.T) {
	t.Setenv("EZEELOGIN_API_SECRET", "s3cret-from-env")
	tgts := parseTargets(t, ezeelogin.Sample)
	if len(tgts) != 1 || tgts[0].Type != ezeelogin.Type {
		t.Fatalf("sample targets: %+v", tgts)
	}
	tg, err := ezeelogin.Factory(tgts[0], connector.Deps{})
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	if tg.Name() != "ssh-gateway" || tg.Type() != "ezeelogin" {
		t.Fatalf("%s %s", tg.Name(), tg.Type())
	}
}

func TestFactoryErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, secret: s}\n", "targets[0].version: is required"},
		{"  - {name: gw, type: ezeelogin, secret: s, version: '7.41.0'}\n", "targets[0].api_url: is required"},
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, version: '7.41.0'}\n", "targets[0].secret: is required"},
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, secret: s, version: '7.41.0', quote: sometimes}\n", "targets[0].quote: \"sometimes\" is not one of"},
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, secret: s, version: '7.40.0', reset_password: on_suspend}\n", "targets[0].reset_password: on_suspend needs Ezeelogin 7.41.0"},
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, secret: s, version: '7.41.0', timezone: Mars/Base}\n", "targets[0].timezone:"},
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, secret: s, version: '7.41.0', never_expires: soon}\n", "targets[0].never_expires:"},
		{"  - {name: gw, type: ezeelogin, api_url: https://g/ezlogin, secret: s, version: '7.41.0', secrte: x}\n", "targets[0].secrte: unknown key"},
	} {
		tgts := parseTargets(t, tc.yaml)
		_, err := ezeelogin.Factory(tgts[0], connector.Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", strings.TrimSpace(tc.yaml), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), ": s,") {
			t.Errorf("the secret is in the error: %v", err)
		}
	}
}
