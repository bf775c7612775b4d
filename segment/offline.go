package segment

import "fmt"

// A log goes offline when a write or sync fails in a way that leaves its
// state on disk unknown: a failed fdatasync, msync or directory fsync, a
// failed seal or cut. Linux reports such a failure once and marks the
// pages clean, so a sync retried afterwards would succeed without writing
// anything: the log never retries. Appends, waits for durability, reads
// and truncation fail with an error wrapping ErrOffline from then on, for
// every caller, until the log is opened again (by a new process: the file
// system keeps failing the syncs of the files involved, see package vfs).

// TakeOffline takes the log offline because of cause, which its own side
// files met (a failed sync of the leader-epoch file, say), logs it, and
// returns the error callers get from then on. Only the first cause is
// kept.
func (l *Log) TakeOffline(cause error) error {
	return l.offline(cause)
}

// Offline returns the error that took the log offline, or nil while it is
// online (a closed log is not offline).
func (l *Log) Offline() error {
	if !l.sync.offline.Load() {
		return nil
	}
	return l.failed()
}

func (l *Log) offline(cause error) error {
	err := fmt.Errorf("%w: %w", ErrOffline, cause)
	l.sync.fail(err)
	l.log.Error("partition offline: its state on disk is unknown after an I/O error; it serves no reads or writes until restarted", "err", err)
	return l.failed()
}
