package sync

import (
	"context"
	"strings"
	stdsync "sync"

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
		for k, u := range p.Input.Known {
			if k == who || u.Username == who || strings.EqualFold(u.Email, who) {
				uu := u
				x.User, key = &uu, k
				break
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
