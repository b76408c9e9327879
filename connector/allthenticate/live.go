package allthenticate

import (
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// LiveFields implements target.LiveFielder: the user list carries the
// suspension status. It does not carry the rank (no API returns it), so a
// rank raised by hand in Allthenticate cannot be seen by a reconcile.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended}
}

// RemoteIDs implements connector.RemoteIDer: email_id and user_id identify
// a user; the guest tag (shared by every guest) does not.
func (t *Target) RemoteIDs() []string { return []string{RemoteEmailID, RemoteUserID} }

// Order implements connector.Orderer: suspend before set_role, so a rank
// step sees whether the account is suspended (a suspended guest is not
// promoted to a full user to get a rank).
func (t *Target) Order() []connector.Action {
	return []connector.Action{connector.ActCreate, connector.ActUnsuspend, connector.ActUpdate, connector.ActSetGroups, connector.ActSetExpiry,
		connector.ActForcePasswordChange, connector.ActSuspend, connector.ActSetRole, connector.ActDelete}
}
