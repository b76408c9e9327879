package allthenticate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/connector"
	"go.uber.org/zap"
)

// Memory keys of what the connector learns from the server.
const (
	memSuspension = "suspension"
	memPromote    = "promoteguest"
)

// candidateFields are the /multipleusers fields that may show a
// suspension: the document gives ACTIVE and SUSPENDED as the states, and
// ACTIVE appears as a value of ad_status while email_status reads
// CONFIRMED.
var candidateFields = []string{"email_status", "ad_status"}

// suspensionKnowledge is what the server has shown about its suspension
// field, kept in memory under memSuspension.
type suspensionKnowledge struct {
	// Configured is suspension_field when this was written: a record made
	// under another setting is ignored (the operator changed it).
	Configured string `json:"configured"`
	// Field is the field a toggle was seen to change.
	Field string `json:"field,omitempty"`
	// From says how Field was learnt.
	From string `json:"from,omitempty"`
	// Broken, when set, refuses every toggle: what the server showed
	// contradicts every reading the connector can act on.
	Broken string `json:"broken,omitempty"`
	// Probe is the reading taken before a toggle made while the field was
	// not known, kept until the reading after it is seen.
	Probe *probe `json:"probe,omitempty"`
}

type probe struct {
	EmailID int               `json:"email_id"`
	Email   string            `json:"email"`
	Before  map[string]string `json:"before"`
}

// field returns the field that shows a suspension, "" while unknown.
func (k suspensionKnowledge) field() string {
	if k.Configured != "" {
		return k.Configured
	}
	return k.Field
}

// candidates are the fields read while the field is unknown, and compared
// before and after a toggle that teaches (or checks) it.
func (t *Target) candidates() []string {
	if f := t.s.SuspensionField; f != "" && !slices.Contains(candidateFields, f) {
		return append(slices.Clone(candidateFields), f)
	}
	return candidateFields
}

// isSuspendedValue reports whether v is suspended_value.
func (t *Target) isSuspendedValue(v string) bool {
	return strings.EqualFold(strings.TrimSpace(v), t.s.SuspendedValue)
}

// knowledge reads what is kept about the suspension field.
func (t *Target) knowledge(ctx context.Context) (suspensionKnowledge, error) {
	k := suspensionKnowledge{Configured: t.s.SuspensionField}
	b, err := t.mem.Recall(ctx, memSuspension)
	if err != nil {
		return k, connector.Retryable(fmt.Errorf("allthenticate: recall what was learnt about the suspension field: %w", err))
	}
	if len(b) == 0 {
		return k, nil
	}
	var got suspensionKnowledge
	if err := json.Unmarshal(b, &got); err != nil || got.Configured != t.s.SuspensionField {
		return k, nil // unreadable, or made under another suspension_field
	}
	return got, nil
}

func (t *Target) keep(ctx context.Context, k suspensionKnowledge) error {
	b, _ := json.Marshal(k)
	if err := t.mem.Remember(ctx, memSuspension, b); err != nil {
		return connector.Retryable(fmt.Errorf("allthenticate: keep what was learnt about the suspension field: %w", err))
	}
	return nil
}

// status tells whether u is suspended, and whether that is known: with the
// field known it is its value; while unknown, a user whom no candidate
// field shows suspended is active under every reading, and one whom a
// candidate shows suspended cannot be told.
func (t *Target) status(k suspensionKnowledge, u apiUser) (suspended, known bool) {
	if f := k.field(); f != "" {
		return t.isSuspendedValue(u.field(f)), true
	}
	for _, f := range t.candidates() {
		if t.isSuspendedValue(u.field(f)) {
			return true, false
		}
	}
	return false, true
}

// reading returns the candidate fields' values of u.
func (t *Target) reading(u apiUser) map[string]string {
	m := map[string]string{}
	for _, f := range t.candidates() {
		m[f] = u.field(f)
	}
	return m
}

func (t *Target) describe(u apiUser) string {
	var parts []string
	for _, f := range t.candidates() {
		parts = append(parts, fmt.Sprintf("%s %q", f, u.field(f)))
	}
	return strings.Join(parts, ", ")
}

// changed lists the candidate fields whose suspended-ness differs between
// two readings.
func (t *Target) changed(before, after map[string]string) []string {
	var out []string
	for _, f := range t.candidates() {
		if t.isSuspendedValue(before[f]) != t.isSuspendedValue(after[f]) {
			out = append(out, f)
		}
	}
	return out
}

// learn draws what a toggle of who showed (before → after) and returns the
// knowledge with it: the one field that changed, or Broken.
func (t *Target) learn(k suspensionKnowledge, who string, before, after map[string]string) suspensionKnowledge {
	k.Probe = nil
	ch := t.changed(before, after)
	switch {
	case k.Configured != "" && len(ch) == 1 && ch[0] == k.Configured:
		// As configured.
	case k.Configured != "":
		k.Broken = fmt.Sprintf("a toggle of %s changed %s, not the configured suspension_field %q: set suspension_field to the field that shows a suspension (or remove it to learn it)",
			who, orNothing(ch), k.Configured)
	case len(ch) == 1:
		k.Field, k.From = ch[0], fmt.Sprintf("a toggle of %s changed %s (%q → %q)", who, ch[0], before[ch[0]], after[ch[0]])
		t.log.Info("allthenticate: learnt which field shows a suspension", zap.String("field", k.Field), zap.String("from", k.From))
	default:
		k.Broken = fmt.Sprintf("a toggle of %s changed %s: which field shows a suspension cannot be told; set suspension_field", who, orNothing(ch))
	}
	if k.Broken != "" {
		t.log.Error("allthenticate: suspension toggles refused", zap.String("reason", k.Broken))
	}
	return k
}

func orNothing(fields []string) string {
	if len(fields) == 0 {
		return "neither " + strings.Join(candidateFields, " nor ")
	}
	return strings.Join(fields, " and ")
}

// settle resolves a toggle made while learning whose answer was lost: the
// user's reading now, compared with the one kept before, says whether it
// landed and which field it changed. users is a fresh list (full users
// and guests).
func (t *Target) settle(ctx context.Context, k suspensionKnowledge, users []apiUser) (suspensionKnowledge, error) {
	if k.Probe == nil || k.Broken != "" {
		return k, nil
	}
	i := slices.IndexFunc(users, func(u apiUser) bool { return u.EmailID == k.Probe.EmailID })
	if i < 0 {
		// The user is gone: nothing can be learnt from that toggle.
		k.Probe = nil
		return k, t.keep(ctx, k)
	}
	after := t.reading(users[i])
	if len(t.changed(k.Probe.Before, after)) == 0 {
		k.Probe = nil // it did not land
	} else {
		k = t.learn(k, fmt.Sprintf("%q (its answer was lost)", k.Probe.Email), k.Probe.Before, after)
	}
	return k, t.keep(ctx, k)
}

// promoteKnowledge is what the server showed about /promoteguest: which id
// it reads from its email_id parameter.
type promoteKnowledge struct {
	Reads string `json:"reads,omitempty"` // "email_id" or "user_id"
	From  string `json:"from,omitempty"`
}

func (t *Target) promoteReading(ctx context.Context) (promoteKnowledge, error) {
	var k promoteKnowledge
	b, err := t.mem.Recall(ctx, memPromote)
	if err != nil {
		return k, connector.Retryable(fmt.Errorf("allthenticate: recall what was learnt about /promoteguest: %w", err))
	}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &k)
	}
	return k, nil
}

func (t *Target) keepPromote(ctx context.Context, k promoteKnowledge) error {
	b, _ := json.Marshal(k)
	if err := t.mem.Remember(ctx, memPromote, b); err != nil {
		return connector.Retryable(fmt.Errorf("allthenticate: keep what was learnt about /promoteguest: %w", err))
	}
	t.log.Info("allthenticate: learnt which id /promoteguest reads", zap.String("reads", k.Reads), zap.String("from", k.From))
	return nil
}
