package ezeep

import "github.com/dirsync/dirsync/identity"

// LiveFields implements target.LiveFielder: the user list carries the role
// and the printing group list. Suspension is not an ezeep state (it is the
// groups stripped and the role lowered), so it is compared through those.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldRole, identity.FieldGroups}
}

// RemoteIDs implements connector.RemoteIDer: the uuid identifies a user;
// the cached group list (the same for many users) and the invitation id do
// not.
func (t *Target) RemoteIDs() []string { return []string{RemoteUUID} }
