package segment

// PrefaultBusy reports whether the active segment's prefault helper is
// running, for tests that wait for it to end.
func PrefaultBusy(l *Log) bool { return l.active().populating.Load() }
