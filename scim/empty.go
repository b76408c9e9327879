package scim

// AllowEmpty implements source.EmptyAllowed: a SCIM source is empty until
// the identity provider first pushes, which is not "everyone left". Once it
// has had users, the engine refuses an empty read as for any source.
func (s *Server) AllowEmpty() bool { return true }
