package segment

// ActiveReleased returns where the active segment's released pages end
// and its size, for tests of releaseWritten.
func (l *Log) ActiveReleased() (released, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.active()
	return s.released.Load(), s.size.Load()
}
