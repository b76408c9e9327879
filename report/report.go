// Package report builds the access report: one row per application account
// dirsync knows — the person behind it and where they come from, its
// status, expiry, role and groups, dirsync's last change to it and why, and
// what the last reconcile saw. It is what an access review for an audit
// asks for, read from the state store alone (no application is called).
package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

// Row is one application account.
type Row struct {
	Application string    `json:"application"`
	Account     string    `json:"account"`
	Person      string    `json:"person"` // person id, or "orphan"
	Source      string    `json:"source,omitempty"`
	SourceKey   string    `json:"source_key,omitempty"`
	Status      string    `json:"status"` // active, suspended
	Expires     string    `json:"expires,omitempty"`
	Role        string    `json:"role,omitempty"`
	Groups      []string  `json:"groups,omitempty"`
	Privileged  bool      `json:"privileged"`
	LastChange  string    `json:"last_change,omitempty"` // action
	LastReason  string    `json:"last_reason,omitempty"`
	LastAt      time.Time `json:"last_change_at,omitzero"`
	Drift       string    `json:"drift,omitempty"` // fields the last reconcile found changed by hand
	Reconciled  time.Time `json:"reconciled_at,omitzero"`
}

// Target is what the report needs to know of a configured target.
type Target struct {
	Name string
	// Privileged are role names (or path.Match patterns) that count as
	// privileged; empty means the built-in list (admin, super-admin,
	// ADMIN, SUPER, owner, ...).
	Privileged []string
}

// Options filter the report.
type Options struct {
	Target     string // only this application
	Privileged bool   // only privileged accounts
}

// IsPrivileged reports whether role counts as privileged for t.
func (t Target) IsPrivileged(role string) bool {
	return config.IsPrivilegedRole(t.Privileged, role)
}

// Access builds the report from the store.
func Access(ctx context.Context, st state.Store, targets []Target, o Options) ([]Row, error) {
	links, err := st.Links(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: link table: %w", err)
	}
	// person id → its first record (source:key), for the source columns.
	first := map[string]string{}
	for rec, pid := range links {
		if cur, ok := first[pid]; !ok || rec < cur {
			first[pid] = rec
		}
	}
	var rows []Row
	for _, t := range targets {
		if o.Target != "" && o.Target != t.Name {
			continue
		}
		accts, err := st.Accounts(ctx, t.Name)
		if err != nil {
			return nil, fmt.Errorf("report: accounts of %s: %w", t.Name, err)
		}
		last, err := lastChanges(ctx, st, t.Name)
		if err != nil {
			return nil, err
		}
		rec, _ := dsync.LastReconcile(ctx, st, t.Name)
		row := func(key string, a identity.Account) Row {
			r := Row{Application: t.Name, Account: display(a), Person: key, Status: "active", Role: a.Role, Groups: a.Groups,
				Privileged: t.IsPrivileged(a.Role)}
			if strings.HasPrefix(key, "orphan:") {
				r.Person = "orphan"
			} else if src, ok := first[key]; ok {
				r.Source, r.SourceKey, _ = strings.Cut(src, ":")
			}
			if a.Suspended {
				r.Status = "suspended"
			}
			if a.Expires != nil {
				r.Expires = a.Expires.UTC().Format(time.RFC3339)
			}
			if d, ok := last[r.Account]; ok {
				r.LastChange, r.LastReason, r.LastAt = d.Action, d.Reason, d.Time.UTC()
			}
			if rec != nil {
				r.Reconciled = rec.Time
				r.Drift = strings.Join(rec.Drift[key], ",")
			}
			return r
		}
		for _, k := range slices.Sorted(maps.Keys(accts)) {
			a := accts[k]
			if !a.Exists {
				continue
			}
			rows = append(rows, row(k, a))
		}
		if rec != nil {
			for _, a := range rec.Orphans {
				if _, cached := accts[a.Key]; cached && a.Key != "" {
					continue
				}
				r := row("orphan:", a)
				r.Person, r.LastChange, r.LastReason, r.LastAt = "orphan", "", "", time.Time{}
				rows = append(rows, r)
			}
		}
	}
	if o.Privileged {
		rows = slices.DeleteFunc(rows, func(r Row) bool { return !r.Privileged })
	}
	return rows, nil
}

func display(a identity.Account) string {
	if a.Username != "" {
		return a.Username
	}
	if a.Email != "" {
		return a.Email
	}
	return a.Key
}

// lastChanges returns, per account name, the newest applied decision.
func lastChanges(ctx context.Context, st state.Store, tgt string) (map[string]state.Decision, error) {
	ds, err := st.Decisions(ctx, state.DecisionQuery{Target: tgt})
	if err != nil {
		return nil, fmt.Errorf("report: journal of %s: %w", tgt, err)
	}
	out := map[string]state.Decision{}
	for _, d := range ds {
		if d.Outcome != dsync.OutcomeApplied || d.User == "*" {
			continue
		}
		if cur, ok := out[d.User]; !ok || !d.Time.Before(cur.Time) {
			out[d.User] = d
		}
	}
	return out, nil
}

var header = []string{"application", "account", "person", "source", "source_key", "status", "expires", "role", "groups",
	"privileged", "last_change", "last_reason", "last_change_at", "drift", "reconciled_at"}

func (r Row) fields() []string {
	at, rec := "", ""
	if !r.LastAt.IsZero() {
		at = r.LastAt.Format(time.RFC3339)
	}
	if !r.Reconciled.IsZero() {
		rec = r.Reconciled.Format(time.RFC3339)
	}
	return []string{r.Application, r.Account, r.Person, r.Source, r.SourceKey, r.Status, r.Expires, r.Role,
		strings.Join(r.Groups, ";"), fmt.Sprint(r.Privileged), r.LastChange, r.LastReason, at, r.Drift, rec}
}

// WriteCSV writes RFC 4180 CSV with a header row: it opens in a
// spreadsheet as it is.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(r.fields()); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the rows as one JSON array.
func WriteJSON(w io.Writer, rows []Row) error {
	if rows == nil {
		rows = []Row{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

// WriteTable writes an aligned table of the columns a reviewer reads first.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLICATION\tACCOUNT\tPERSON\tSOURCE\tSTATUS\tEXPIRES\tROLE\tGROUPS\tLAST CHANGE\tDRIFT")
	for _, r := range rows {
		src := r.Source
		if r.SourceKey != "" {
			src += ":" + r.SourceKey
		}
		last := r.LastChange
		if last != "" {
			last += " (" + r.LastAt.Format("2006-01-02") + "): " + r.LastReason
		}
		priv := r.Role
		if r.Privileged {
			priv += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Application, r.Account, r.Person, dash(src), r.Status,
			dash(r.Expires), dash(priv), dash(strings.Join(r.Groups, ",")), dash(last), dash(r.Drift))
	}
	fmt.Fprintln(tw, "(* privileged role)")
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
