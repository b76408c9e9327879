package allthenticate

import "github.com/dirsync/dirsync/identity"

// LiveFields implements target.LiveFielder: the user list carries the
// suspension status. It does not carry the rank (no API returns it), so a
// rank raised by hand in Allthenticate cannot be seen by a reconcile.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended}
}
