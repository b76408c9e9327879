package netmaker

import (
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// LiveFields implements connector.LiveFielder: a listed Netmaker user carries
// its disabled flag, platform role and (managed) user groups.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended, identity.FieldRole, identity.FieldGroups}
}

// LiveFields implements connector.LiveFielder.
func (a *Adopting) LiveFields() []string { return a.t.LiveFields() }

var (
	_ connector.LiveFielder = (*Target)(nil)
	_ connector.LiveFielder = (*Adopting)(nil)
)
