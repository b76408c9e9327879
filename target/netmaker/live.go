package netmaker

import "github.com/dirsync/dirsync/identity"

// LiveFields implements target.LiveFielder: a listed Netmaker user carries
// its disabled flag, platform role and (managed) user groups.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended, identity.FieldRole, identity.FieldGroups}
}
