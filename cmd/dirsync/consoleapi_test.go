package main

import (
	"context"
	"strings"
	"testing"
)

// A standby's console refuses to approve or discard (only the leader
// applies), and says so.
func TestConsoleOnStandbyRefusesToApply(t *testing.T) {
	api := &consoleAPI{leading: func() bool { return false }, leader: func() string { return "this replica is a standby" }}
	if _, err := api.Approve(context.Background(), "R1", nil, "ann"); err == nil || !strings.Contains(err.Error(), "not the leader") {
		t.Fatalf("approve on a standby: %v", err)
	}
	if err := api.Discard(context.Background(), "R1", "ann"); err == nil || !strings.Contains(err.Error(), "not the leader") {
		t.Fatalf("discard on a standby: %v", err)
	}
}
