package sync

import (
	"context"
	"strings"
	stdsync "sync"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// Explanation is the chain behind one user's account on one target: the
// source record, the rules that matched, the desired and cached accounts,
// and what a run would do now and why.
type Explanation struct {
	Target  string            `json:"target"`
	User    *identity.User    `json:"user,omitempty"`
	InScope bool              `json:"in_scope"`
	Why     string            `json:"why,omitempty"`
	RoleWhy string            `json:"role_why,omitempty"`
	Desired *identity.Account `json:"desired,omitempty"`
	Cached  *identity.Account `json:"cached,omitempty"`
	Steps   []Step            `json:"steps,omitempty"`
	Skips   []Step            `json:"skips,omitempty"`
}

// Explain plans (without applying or recording anything) and returns the
// chain for the user whose key, username or email is who.
func (e *Engine) Explain(ctx context.Context, who string, ro RunOptions) ([]Explanation, error) {
	var mu stdsync.Mutex
	var out []Explanation
	ro.NoApply = true
	ro.onPrepared = func(p *Prepared) {
		x := Explanation{Target: p.Spec.Target.Name()}
		key := ""
		if u, ok := p.Input.Known.Get(who); ok {
			uu := *u
			x.User, key = &uu, u.Key
		}
		for _, u := range p.Input.Known {
			if key != "" {
				break
			}
			if u.Username == who || strings.EqualFold(u.Email, who) {
				uu := u
				x.User, key = &uu, u.Key
			}
		}
		if key == "" {
			for k, c := range p.Input.Cached {
				if k == who || c.Username == who || strings.EqualFold(c.Email, who) {
					key = k
				}
			}
		}
		if key == "" {
			return
		}
		if d, ok := p.Desired[key]; ok {
			a := d.Account
			x.InScope, x.Why, x.RoleWhy, x.Desired = true, d.Why, d.RoleWhy, &a
		}
		if c, ok := p.Input.Cached[key]; ok {
			x.Cached = &c
		}
		for _, s := range p.Plan.Steps {
			if s.Key == key {
				x.Steps = append(x.Steps, s)
			}
		}
		for _, s := range p.Plan.Skips {
			if s.Key == key {
				x.Skips = append(x.Skips, s)
			}
		}
		mu.Lock()
		out = append(out, x)
		mu.Unlock()
	}
	if _, err := e.Run(ctx, ro); err != nil {
		return nil, err
	}
	return out, nil
}

// PlanIndex is one plan-only run kept for pages: every person's chain per
// target (by person key), the names that find them, and every planned
// step (target + step id), from which a held plan's re-check is read.
type PlanIndex struct {
	ByKey map[string][]Explanation
	// Names maps a person key, username or lower-cased email to the key.
	Names   map[string]string
	planned map[string]bool
}

// Wanted reports whether the indexed plan wants a step of target.
func (ix *PlanIndex) Wanted(target, key string, act connector.Action) bool {
	return ix.planned[target+"\x00"+stepID(key, act)]
}

// WantedOf returns a held plan's HeldCheck against the indexed plan.
func (ix *PlanIndex) WantedOf(hp HeldPlan) HeldCheck {
	hc := HeldCheck{Held: hp, Wanted: map[string]bool{}}
	for _, p := range hp.Plans {
		for _, s := range p.Steps {
			hc.Wanted[s.Key+"/"+string(s.Action)] = ix.Wanted(p.Target, s.Key, s.Action)
		}
	}
	return hc
}

// IndexPlan plans once from the stored reads (nothing applied or
// recorded, no wait behind a run) and indexes the result: what the
// console's person and held-plan pages read instead of planning per view.
func (e *Engine) IndexPlan(ctx context.Context) (*PlanIndex, error) {
	ix := &PlanIndex{ByKey: map[string][]Explanation{}, Names: map[string]string{}, planned: map[string]bool{}}
	var mu stdsync.Mutex
	ro := RunOptions{NoApply: true, UseStored: true, Trigger: "explain", onPrepared: func(p *Prepared) {
		name := p.Spec.Target.Name()
		steps := map[string][]Step{}
		for _, s := range p.Plan.Steps {
			steps[s.Key] = append(steps[s.Key], s)
		}
		skips := map[string][]Step{}
		for _, s := range p.Plan.Skips {
			skips[s.Key] = append(skips[s.Key], s)
		}
		out := map[string]Explanation{}
		for _, u := range p.Input.Known {
			uu := u
			out[u.Key] = Explanation{Target: name, User: &uu}
		}
		for k := range p.Input.Cached {
			if _, ok := out[k]; !ok {
				out[k] = Explanation{Target: name}
			}
		}
		for k, x := range out {
			if d, ok := p.Desired[k]; ok {
				a := d.Account
				x.InScope, x.Why, x.RoleWhy, x.Desired = true, d.Why, d.RoleWhy, &a
			}
			if c, ok := p.Input.Cached[k]; ok {
				x.Cached = &c
			}
			x.Steps, x.Skips = steps[k], skips[k]
			out[k] = x
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range p.Plan.Steps {
			ix.planned[name+"\x00"+stepID(s.Key, s.Action)] = true
		}
		for k, x := range out {
			ix.ByKey[k] = append(ix.ByKey[k], x)
			ix.Names[k] = k
			for _, n := range []string{nameOf(x.User), emailOf(x.User)} {
				if n != "" {
					ix.Names[n] = k
				}
			}
			if x.Cached != nil {
				for _, n := range []string{x.Cached.Username, strings.ToLower(x.Cached.Email)} {
					if n != "" {
						if _, taken := ix.Names[n]; !taken {
							ix.Names[n] = k
						}
					}
				}
			}
		}
	}}
	if _, err := e.Run(ctx, ro); err != nil {
		return nil, err
	}
	return ix, nil
}

func nameOf(u *identity.User) string {
	if u == nil {
		return ""
	}
	return u.Username
}

func emailOf(u *identity.User) string {
	if u == nil {
		return ""
	}
	return strings.ToLower(u.Email)
}
