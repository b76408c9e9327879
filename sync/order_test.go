package sync_test

import (
	"slices"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	dsync "github.com/dirsync/dirsync/sync"
)

// A target's configured order replaces the default per-account order.
func TestConfiguredOrder(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Order = []string{"create", "suspend", "set_expiry"} })
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	e := h.Clock.Now().Add(240 * time.Hour)
	us[1].Expires, us[1].Active = &e, false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if got := mt.CallsFor("u001"); !slices.Equal(got, []connector.Action{connector.ActCreate, connector.ActSuspend, connector.ActSetExpiry}) {
		t.Fatalf("calls = %v, want create, suspend, set_expiry", got)
	}
}
