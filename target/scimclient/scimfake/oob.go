package scimfake

// EditUser changes a user the way an administrator does in the service
// provider's own UI, out of band: no request is recorded. It reports
// whether the user exists.
func (s *Server) EditUser(id string, f func(u map[string]any)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return false
	}
	f(u)
	return true
}
