package allthenticate

import "github.com/dirsync/dirsync/identity"

// LiveFields implements target.LiveFielder: the user list carries the
// suspension status. It does not carry the rank (no API returns it), so a
// rank raised by hand in Allthenticate cannot be seen by a reconcile.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended}
}

// RemoteIDs implements connector.RemoteIDer: email_id and user_id identify
// a user; the guest tag (shared by every guest) does not.
func (t *Target) RemoteIDs() []string { return []string{RemoteEmailID, RemoteUserID} }
