package netmaker

// RemoteIDs implements connector.RemoteIDer: the username identifies a
// Netmaker user; auth_type and idp, shared by many users, do not, so a
// reconcile never matches a live user to a cached one by them.
func (t *Target) RemoteIDs() []string { return []string{"username"} }
