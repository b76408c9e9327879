package main

import (
	"bytes"
	"fmt"
	"testing"
	"text/tabwriter"

	"github.com/dirsync/dirsync/connector"
	dsync "github.com/dirsync/dirsync/sync"
)

// TestPrintPlansLayout: the streamed plan listing is laid out exactly as a
// tabwriter lays it out (columns two spaces apart, widths in characters).
func TestPrintPlansLayout(t *testing.T) {
	plans := []dsync.Plan{
		{Target: "vpn", Steps: []dsync.Step{{User: "jo", Action: connector.ActCreate, Reason: "in scope"},
			{User: "zoë.müller@example.test", Action: connector.ActSetGroups, Reason: "groups +a"}},
			Skips: []dsync.Step{{User: "root", Action: connector.ActSuspend, Reason: "protected"}}},
		{Target: "printing-long-name", Steps: []dsync.Step{{User: "x", Action: connector.ActDelete, Reason: ""}}},
		{Target: "empty"},
	}
	for _, ps := range [][]dsync.Plan{plans, nil} {
		var want bytes.Buffer
		tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TARGET\tUSER\tACTION\tREASON")
		n := 0
		for _, p := range ps {
			for _, s := range p.Steps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Target, s.User, s.Action, s.Reason)
				n++
			}
			for _, s := range p.Skips {
				fmt.Fprintf(tw, "%s\t%s\t%s (skip)\t%s\n", p.Target, s.User, s.Action, s.Reason)
				n++
			}
		}
		tw.Flush()
		fmt.Fprintf(&want, "%d planned actions\n", n)
		var got bytes.Buffer
		printPlans(&got, ps)
		if got.String() != want.String() {
			t.Fatalf("got:\n%s\nwant:\n%s", got.String(), want.String())
		}
	}
}
