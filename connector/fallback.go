package connector

import (
	"fmt"

	"github.com/dirsync/dirsync/config"
)

// FallbackWarnings lists the settings of a target under which the configured
// deprovisioning cannot be done, so that the engine does the next
// access-removing action instead (DESIGN invariant 12): deleting on a
// target that cannot delete. `dirsync validate` prints them with the
// connector's own warnings (Warner), which name the accounts of that
// application it cannot delete (Netmaker's SSO users).
func FallbackWarnings(cfg config.Target, t Connector) []string {
	if Supports(t, ActDelete) {
		return nil
	}
	then := "they are suspended instead"
	if !Supports(t, ActSuspend) {
		then = "it cannot suspend them either: their accounts stay as they are"
	}
	var w []string
	switch {
	case cfg.Deprovision.Action == "delete":
		w = append(w, fmt.Sprintf("%s: the %s connector cannot delete accounts, but deprovision is delete: %s", cfg.Name, t.Type(), then))
	case cfg.Deprovision.Action == "suspend" && cfg.Deprovision.DeleteAfter > 0:
		w = append(w, fmt.Sprintf("%s: the %s connector cannot delete accounts, but deprovision.delete_after is set: leavers stay suspended", cfg.Name, t.Type()))
	}
	if cfg.Reconcile.Orphans == "delete" {
		w = append(w, fmt.Sprintf("%s: the %s connector cannot delete accounts, but reconcile.orphans is delete: orphans are %s",
			cfg.Name, t.Type(), map[bool]string{true: "suspended instead", false: "only reported"}[Supports(t, ActSuspend)]))
	}
	return w
}
