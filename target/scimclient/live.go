package scimclient

import "github.com/dirsync/dirsync/identity"

// LiveFields implements target.LiveFielder: active, and the groups and the
// role attribute when dirsync manages them.
func (t *Target) LiveFields() []string {
	f := []string{identity.FieldSuspended}
	if t.s.ManageGroups != nil && *t.s.ManageGroups {
		f = append(f, identity.FieldGroups)
	}
	if t.s.RoleAttribute != "" {
		f = append(f, identity.FieldRole)
	}
	return f
}
