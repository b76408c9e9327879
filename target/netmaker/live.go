package netmaker

import (
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
)

// LiveFields implements target.LiveFielder: a listed Netmaker user carries
// its disabled flag, platform role and (managed) user groups.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended, identity.FieldRole, identity.FieldGroups}
}

// LiveFields implements target.LiveFielder.
func (a *Adopting) LiveFields() []string { return a.t.LiveFields() }

var (
	_ target.LiveFielder = (*Target)(nil)
	_ target.LiveFielder = (*Adopting)(nil)
)
