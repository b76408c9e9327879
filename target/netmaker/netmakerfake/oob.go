package netmakerfake

// RemoveUser deletes a user the way an administrator does in Netmaker's UI,
// out of band: no request is recorded, the edit is.
func (s *Server) RemoveUser(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return false
	}
	delete(s.users, name)
	s.Note(name + ": deleted")
	return true
}
