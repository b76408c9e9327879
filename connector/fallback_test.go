package connector_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

type suspendOnly struct{ bare }

func (suspendOnly) Suspend(context.Context, *identity.Account) error   { return nil }
func (suspendOnly) Unsuspend(context.Context, *identity.Account) error { return nil }

// validate warns when the configuration deletes on a target that cannot
// delete (invariant 12: leavers are suspended instead).
func TestFallbackWarnings(t *testing.T) {
	cfg := config.Target{}
	cfg.Name = "app"
	cfg.Deprovision.Action = "delete"
	cfg.Reconcile.Orphans = "delete"
	w := strings.Join(connector.FallbackWarnings(cfg, suspendOnly{}), "\n")
	if !strings.Contains(w, "deprovision is delete: they are suspended instead") || !strings.Contains(w, "orphans are suspended instead") {
		t.Fatalf("warnings %q", w)
	}
	w = strings.Join(connector.FallbackWarnings(cfg, bare{}), "\n")
	if !strings.Contains(w, "cannot suspend them either") || !strings.Contains(w, "only reported") {
		t.Fatalf("warnings %q", w)
	}
	cfg.Deprovision.Action, cfg.Reconcile.Orphans = "suspend", "suspend"
	if w := connector.FallbackWarnings(cfg, suspendOnly{}); len(w) != 0 {
		t.Fatalf("nothing deletes: %q", w)
	}
}

// A skip's cause survives wrapping; other errors have none.
func TestSkipCauses(t *testing.T) {
	imp := connector.Impossible("app: delete %q: refused", "x")
	if connector.KindOf(imp) != connector.KindSkipped || connector.CauseOf(imp) != connector.CauseImpossible {
		t.Fatalf("%v", imp)
	}
	un := connector.Unreadable(connector.NotFound(context.Canceled))
	if connector.KindOf(un) != connector.KindSkipped || connector.CauseOf(un) != connector.CauseUnreadable {
		t.Fatalf("kind %v cause %v", connector.KindOf(un), connector.CauseOf(un))
	}
	if connector.CauseOf(connector.Skip("no")) != connector.CauseDeclined || connector.CauseOf(context.Canceled) != connector.CauseDeclined {
		t.Fatal("a plain skip or error has a cause")
	}
}
