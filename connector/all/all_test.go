package all_test

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/all"
	"github.com/dirsync/dirsync/identity"
)

type refuse struct{}

func (refuse) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

// Every connector honours the common protected key: an account named there
// is refused for every action, by name or by email, whatever its case.
func TestProtectedEveryConnector(t *testing.T) {
	env := regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)
	for typ, sample := range all.Samples() {
		t.Run(typ, func(t *testing.T) {
			for _, m := range env.FindAllStringSubmatch(sample, -1) {
				t.Setenv(m[1], "header.payload.signature-for-tests")
			}
			// Add the key to the sample's (first) target.
			list := "protected: [Break-Glass, svc@example.test]"
			yaml := sample
			if existing := regexp.MustCompile(`(?m)protected: \[\]$`); existing.MatchString(yaml) {
				yaml = existing.ReplaceAllString(yaml, list)
			} else {
				yaml = regexp.MustCompile(`(?m)^(\s*)type: `+typ+`$`).ReplaceAllString(yaml, "${1}type: "+typ+"\n${1}"+list)
			}
			cfg, err := config.Parse(strings.NewReader("sources: [{name: hr, type: memory}]\ntargets:\n" + yaml))
			if err != nil {
				t.Fatal(err)
			}
			tg, err := all.Build(cfg.Targets[0], connector.Deps{HTTPClient: &http.Client{Transport: refuse{}}})
			if err != nil {
				t.Fatal(err)
			}
			g, ok := tg.(connector.Gater)
			if !ok {
				t.Fatalf("%s has no Gate: it cannot refuse protected accounts", typ)
			}
			for _, a := range []identity.Account{{Username: "break-glass", Email: "bg@example.test"}, {Username: "svc1", Email: "SVC@example.test"}} {
				for _, act := range connector.Capabilities(tg) {
					if why := g.Gate(act, a); !strings.Contains(why, "protected") {
						t.Errorf("%s %s %s: gate %q", typ, act, a.Username, why)
					}
				}
			}
		})
	}
}
