package segment

import "errors"

// Errors of the partition log, grouped by when they happen.
var (
	// ErrCorrupt matches every *CorruptError.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrOffsetSequence: a batch's base offset is not the one that should
	// follow the batch before it.
	ErrOffsetSequence = errors.New("segment: batch offset out of sequence")

	// ErrOffsetOutOfRange: the offset is below the log start or past the end.
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrBatchTooLarge: the batch does not fit in an empty segment.
	ErrBatchTooLarge = errors.New("segment: batch larger than the segment size")
	// ErrNoSpace: the file system is full. The log stays usable; the append
	// that hit it failed and wrote nothing.
	ErrNoSpace = errors.New("segment: no space left on device")

	// ErrClosed: the log or segment has been closed.
	ErrClosed = errors.New("segment: closed")
	// ErrOffline: a write or sync failed in a way that leaves the log's
	// on-disk state unknown (a failed fdatasync, say). The partition stops
	// taking writes until it is reopened, which runs recovery.
	ErrOffline = errors.New("segment: partition offline after an I/O error")
)
