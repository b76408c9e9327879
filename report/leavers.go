package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

// The leavers report is offboarding evidence for an auditor: every person
// who lost access in a period, when the source said so (the time the
// source itself recorded: modifyTimestamp, whenChanged, the SCIM push),
// when each application confirmed the suspension or deletion, the time in
// between, and what is still pending and why. It reads the state store
// alone: the journal, the link table, the cached accounts and the stored
// source reads.

// LeaverApp is one application's part in a leaver's offboarding.
type LeaverApp struct {
	Application string    `json:"application"`
	Account     string    `json:"account"`
	Action      string    `json:"action"`                // suspend or delete
	Confirmed   time.Time `json:"confirmed_at,omitzero"` // when the application confirmed it
	// Seconds is Confirmed minus the leaver's SourceTime.
	Seconds float64 `json:"seconds,omitempty"`
	// Pending says why the application has not confirmed yet (held,
	// failed, skipped, with the decision's reason and error).
	Pending string `json:"pending,omitempty"`
}

// Leaver is one person who lost access in the period.
type Leaver struct {
	Person string `json:"person"` // person id
	Name   string `json:"name"`
	Source string `json:"source,omitempty"`
	// SourceTime is when the source said so; SourceTimeFrom what it is
	// (modifyTimestamp, whenChanged, SCIM push), or "first decision" when
	// the source keeps no record of it (the entry was deleted).
	SourceTime     time.Time   `json:"source_time"`
	SourceTimeFrom string      `json:"source_time_from"`
	Applications   []LeaverApp `json:"applications"`
	// Slowest is the longest time to a confirmation; a pending application
	// counts until the report's end.
	Slowest float64 `json:"slowest_seconds"`
	Pending int     `json:"pending"`
}

// AppStat is one application's offboarding times over the period.
type AppStat struct {
	Application string  `json:"application"`
	Confirmed   int     `json:"confirmed"`
	Pending     int     `json:"pending"`
	P50         float64 `json:"p50_seconds"`
	P95         float64 `json:"p95_seconds"`
}

// LeaversReport is the whole report, slowest leavers first.
type LeaversReport struct {
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until"`
	Leavers      []Leaver  `json:"leavers"`
	Applications []AppStat `json:"applications"`
}

// LeaversOptions bound the report.
type LeaversOptions struct {
	Since time.Time
	Until time.Time // the report's end (default now)
	// Sources are the configured sources, whose stored reads give the
	// source's own change times.
	Sources []string
}

func leaverAction(a string) bool { return a == "suspend" || a == "delete" }

// Leavers builds the report from the store.
func Leavers(ctx context.Context, st state.Store, o LeaversOptions) (*LeaversReport, error) {
	if o.Until.IsZero() {
		o.Until = time.Now().UTC()
	}
	ds, err := st.Decisions(ctx, state.DecisionQuery{Since: o.Since})
	if err != nil {
		return nil, fmt.Errorf("report: journal: %w", err)
	}
	type acct struct{ target, user string }
	type appState struct {
		action             string
		confirmed          time.Time
		first              time.Time // first decision about it
		pending, pendingAt string
	}
	apps := map[acct]*appState{}
	var order []acct
	for _, d := range ds {
		if d.User == "*" || !leaverAction(d.Action) || d.Time.After(o.Until) || d.Outcome == dsync.OutcomeDryRun {
			continue
		}
		k := acct{d.Target, d.User}
		a := apps[k]
		if a == nil {
			a = &appState{action: d.Action, first: d.Time}
			apps[k] = a
			order = append(order, k)
		}
		if !a.confirmed.IsZero() {
			continue
		}
		if d.Outcome == dsync.OutcomeApplied {
			a.confirmed, a.action, a.pending = d.Time.UTC(), d.Action, ""
			continue
		}
		why := d.Outcome + ": " + d.Reason
		if d.Error != "" {
			why += " (" + d.Error + ")"
		}
		a.pending = why
	}
	if len(order) == 0 {
		return &LeaversReport{Since: o.Since.UTC(), Until: o.Until.UTC(), Leavers: []Leaver{}, Applications: []AppStat{}}, nil
	}
	// Who each account belongs to: the cache (by the account's names), then
	// the link table to the person's source records.
	owner := map[acct]string{}
	for _, tgt := range uniqueTargets(order, func(a acct) string { return a.target }) {
		accts, err := st.Accounts(ctx, tgt)
		if err != nil {
			return nil, fmt.Errorf("report: accounts of %s: %w", tgt, err)
		}
		byName := map[string]string{}
		for pid, a := range accts {
			for _, n := range []string{a.Username, a.Email, a.Key} {
				if n != "" {
					byName[n] = pid
				}
			}
		}
		for _, k := range order {
			if k.target == tgt {
				if pid, ok := byName[k.user]; ok && !strings.HasPrefix(pid, "orphan:") {
					owner[k] = pid
				}
			}
		}
	}
	links, err := st.Links(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: link table: %w", err)
	}
	records := map[string][]string{} // person id → "source:key"
	for rec, pid := range links {
		records[pid] = append(records[pid], rec)
	}
	users := map[string]identity.User{} // "source:key" → record
	byName := map[string]string{}       // username/email → "source:key"
	for _, src := range o.Sources {
		snap, err := st.GetSnapshot(ctx, src)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("report: stored read of %s: %w", src, err)
		}
		for _, u := range snap.Users {
			id := src + ":" + u.Key
			users[id] = u
			for _, n := range []string{u.Username, u.Email} {
				if n != "" {
					byName[n] = id
				}
			}
		}
	}
	// Group the accounts by person.
	people := map[string]*Leaver{}
	var porder []string
	for _, k := range order {
		pid := owner[k]
		if pid == "" {
			if rec, ok := byName[k.user]; ok {
				if p, ok := links[rec]; ok {
					pid = p
				}
			}
		}
		if pid == "" {
			pid = "account:" + k.user
		}
		l := people[pid]
		if l == nil {
			l = &Leaver{Person: pid, Name: k.user}
			people[pid] = l
			porder = append(porder, pid)
		}
		a := apps[k]
		l.Applications = append(l.Applications, LeaverApp{Application: k.target, Account: k.user, Action: a.action, Confirmed: a.confirmed, Pending: a.pending})
	}
	var out []Leaver
	perApp := map[string][]float64{}
	pendingApp := map[string]int{}
	for _, pid := range porder {
		l := people[pid]
		// The earliest decision about this person is when dirsync first
		// acted on it; the source's own time comes from its record.
		var first time.Time
		for _, la := range l.Applications {
			if f := apps[acct{la.Application, la.Account}].first; first.IsZero() || f.Before(first) {
				first = f
			}
		}
		recs := records[pid]
		if len(recs) == 0 {
			if rec, ok := byName[l.Name]; ok {
				recs = []string{rec}
			}
		}
		slices.Sort(recs)
		for _, rec := range recs {
			u, ok := users[rec]
			if !ok {
				continue
			}
			if u.Username != "" {
				l.Name = u.Username
			} else if u.Email != "" {
				l.Name = u.Email
			}
			l.Source = u.Source
			// The record's own change time says when the source disabled
			// it; a record still active left by another way (a group, a
			// scope), whose time the record does not carry.
			if !u.Active && !u.Changed.IsZero() && !u.Changed.After(first) && (l.SourceTime.IsZero() || u.Changed.After(l.SourceTime)) {
				l.SourceTime, l.SourceTimeFrom = u.Changed.UTC(), u.ChangedFrom
			}
		}
		if l.SourceTime.IsZero() {
			l.SourceTime, l.SourceTimeFrom = first.UTC(), "first decision (the source keeps no time for it)"
		}
		for i := range l.Applications {
			la := &l.Applications[i]
			if la.Confirmed.IsZero() {
				l.Pending++
				pendingApp[la.Application]++
				l.Slowest = max(l.Slowest, o.Until.Sub(l.SourceTime).Seconds())
				continue
			}
			la.Seconds = round3(la.Confirmed.Sub(l.SourceTime).Seconds())
			l.Slowest = max(l.Slowest, la.Seconds)
			perApp[la.Application] = append(perApp[la.Application], la.Seconds)
		}
		l.Slowest = round3(l.Slowest)
		slices.SortFunc(l.Applications, func(a, b LeaverApp) int { return strings.Compare(a.Application, b.Application) })
		out = append(out, *l)
	}
	slices.SortStableFunc(out, func(a, b Leaver) int {
		if a.Slowest != b.Slowest {
			if a.Slowest > b.Slowest {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	rep := &LeaversReport{Since: o.Since.UTC(), Until: o.Until.UTC(), Leavers: out}
	names := map[string]bool{}
	for _, k := range order {
		names[k.target] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		xs := perApp[n]
		slices.Sort(xs)
		rep.Applications = append(rep.Applications, AppStat{Application: n, Confirmed: len(xs), Pending: pendingApp[n],
			P50: percentile(xs, 50), P95: percentile(xs, 95)})
	}
	return rep, nil
}

func uniqueTargets[T any](xs []T, f func(T) string) []string {
	var out []string
	for _, x := range xs {
		if n := f(x); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// percentile is the nearest-rank percentile of sorted xs (0 when empty).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func secs(x float64) string {
	return time.Duration(x * float64(time.Second)).Round(time.Millisecond).String()
}

// WriteLeaversTable writes one line per leaver and application, slowest
// leaver first, then each application's p50 and p95.
func WriteLeaversTable(w io.Writer, r *LeaversReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Leavers from %s to %s: %d\n\n", r.Since.Format(time.RFC3339), r.Until.Format(time.RFC3339), len(r.Leavers))
	fmt.Fprintln(tw, "LEAVER\tSOURCE\tSOURCE SAID SO\tFROM\tAPPLICATION\tACTION\tCONFIRMED\tAFTER\tPENDING")
	for _, l := range r.Leavers {
		for i, a := range l.Applications {
			name, src, when, from := l.Name, dash(l.Source), l.SourceTime.Format(time.RFC3339), l.SourceTimeFrom
			if i > 0 {
				name, src, when, from = "", "", "", ""
			}
			conf, after := "-", "-"
			if !a.Confirmed.IsZero() {
				conf, after = a.Confirmed.Format(time.RFC3339Nano), secs(a.Seconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, src, when, from, a.Application, a.Action, conf, after, dash(a.Pending))
		}
	}
	fmt.Fprintln(tw, "\nAPPLICATION\tCONFIRMED\tPENDING\tP50\tP95")
	for _, s := range r.Applications {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Application, s.Confirmed, s.Pending, secs(s.P50), secs(s.P95))
	}
	return tw.Flush()
}

var leaversHeader = []string{"person", "name", "source", "source_time", "source_time_from", "application", "account", "action",
	"confirmed_at", "seconds", "pending"}

// WriteLeaversCSV writes one RFC 4180 row per leaver and application.
func WriteLeaversCSV(w io.Writer, r *LeaversReport) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(leaversHeader); err != nil {
		return err
	}
	for _, l := range r.Leavers {
		for _, a := range l.Applications {
			conf, s := "", ""
			if !a.Confirmed.IsZero() {
				conf, s = a.Confirmed.Format(time.RFC3339Nano), fmt.Sprint(a.Seconds)
			}
			if err := cw.Write([]string{l.Person, l.Name, l.Source, l.SourceTime.Format(time.RFC3339Nano), l.SourceTimeFrom,
				a.Application, a.Account, a.Action, conf, s, a.Pending}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteLeaversJSON writes the whole report as one JSON object.
func WriteLeaversJSON(w io.Writer, r *LeaversReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
