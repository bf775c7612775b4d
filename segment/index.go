package segment

// Index is the offset and time index of one partition. It is derived data:
// everything in it can be rebuilt by scanning the segments, so writes need
// not be durable, with one rule: a checkpoint written with SetCheckpoint must
// not become durable before the index entries added ahead of it.
//
// index.Partition implements it over Pebble. Methods may be called from
// several goroutines: Add, TruncateFrom, DeleteBefore and the checkpoint and
// segment-info setters only by the log's writer, the lookups by any reader.
type Index interface {
	// Add records one sparse entry. Entries arrive in increasing offset order.
	Add(e IndexEntry) error
	// Floor returns the entry with the largest Offset <= offset.
	Floor(offset int64) (IndexEntry, bool, error)
	// TimeFloor returns the last entry whose MaxTimestamp is below ts: every
	// batch up to and including that entry's batch has a timestamp below ts.
	TimeFloor(ts int64) (IndexEntry, bool, error)
	// TruncateFrom removes the entries with Offset >= offset.
	TruncateFrom(offset int64) error
	// DeleteBefore removes the entries with Offset < offset.
	DeleteBefore(offset int64) error
	// ReplaceRange replaces the entries with from <= Offset < to by
	// entries (in offset order, inside the range, with running maximum
	// timestamps between those of the entries around the range), in one
	// write; sync asks for it to be durable before returning. A rewritten
	// segment is indexed with it.
	ReplaceRange(from, to int64, entries []IndexEntry, sync bool) error

	// Checkpoint returns the last recovery checkpoint.
	Checkpoint() (Checkpoint, bool, error)
	// SetCheckpoint stores a recovery checkpoint; sync asks for it (and every
	// entry before it) to be durable before returning.
	SetCheckpoint(c Checkpoint, sync bool) error

	// SegmentInfo returns what was recorded when the segment at base was sealed.
	SegmentInfo(base int64) (SegmentInfo, bool, error)
	// SetSegmentInfo records a sealed segment's summary.
	SetSegmentInfo(base int64, info SegmentInfo) error
	// DeleteSegmentInfo forgets a segment's summary.
	DeleteSegmentInfo(base int64) error

	// Reset removes everything stored for the partition.
	Reset() error
}

// IndexEntry says where a batch starts and bounds the timestamps before it.
type IndexEntry struct {
	Offset   int64 // base offset of the batch
	Segment  int64 // base offset of the segment holding it
	Position int64 // byte position of the batch in that segment
	// MaxTimestamp is the largest maxTimestamp of this batch and every batch
	// before it in the partition, so it never decreases along the index.
	MaxTimestamp int64
}

// Checkpoint is a recovery point: every batch before Position of segment
// Segment is durable on disk and covered by the index, and the next offset
// after them is NextOffset. Recovery scans only what follows it. A
// checkpoint written by a clean Close sits at the very end of the log, which
// is the clean-shutdown marker: nothing follows it, so nothing is scanned.
type Checkpoint struct {
	Segment      int64
	Position     int64
	NextOffset   int64
	MaxTimestamp int64 // running maximum, as in IndexEntry
	Clean        bool  // written by Close
}

// SegmentInfo summarises a sealed segment.
type SegmentInfo struct {
	Size         int64
	LastOffset   int64
	MaxTimestamp int64
}
