package index

import (
	"encoding/binary"
	"fmt"

	"github.com/runnel-io/runnel/segment"
)

// The encodings of the index's keys and values (see the package comment).
// They are on-disk format: testdata/v1 holds their exact bytes for fixed
// inputs and golden_test.go compares them byte for byte.

// Key kinds: the first byte of every key.
const (
	kindOffset     = 'o' // offset index
	kindTime       = 't' // time index
	kindCheckpoint = 'c' // recovery checkpoint
	kindSegment    = 's' // sealed-segment summary
	kindVersion    = 'v' // the database's format version; the key is this byte alone
	kindAborted    = 'a' // aborted transactions, by marker offset (version 2)
	kindTxnEnd     = 'e' // where the aborted-transaction index is complete (version 2)
)

// FormatVersion is the version of the keys and values this code writes and
// reads. A database without a version key was written before the key
// existed, in the format of version 1. Version 2 adds the 'a' and 'e'
// kinds; a database of version 1 has neither, is read as it is and
// marked version 2 at open.
const FormatVersion = 2

// Value sizes, in bytes.
const (
	offsetValueSize     = 24
	timeValueSize       = 16
	checkpointValueSize = 33
	segmentValueSize    = 24
	versionValueSize    = 4
	abortedValueSize    = 24
	txnEndValueSize     = 8
)

// versionKey is the key of the format version.
var versionKey = []byte{kindVersion}

// keyPrefix is kind, name, 0x00, with room for extra bytes after it.
func keyPrefix(kind byte, name []byte, extra int) []byte {
	k := make([]byte, 0, 2+len(name)+extra)
	k = append(k, kind)
	k = append(k, name...)
	return append(k, 0)
}

func offsetKey(name []byte, offset int64) []byte {
	return binary.BigEndian.AppendUint64(keyPrefix(kindOffset, name, 8), uint64(offset))
}

// timeKey flips the timestamp's sign bit so that keys sort as signed numbers.
func timeKey(name []byte, ts, offset int64) []byte {
	k := binary.BigEndian.AppendUint64(keyPrefix(kindTime, name, 16), uint64(ts)^(1<<63))
	return binary.BigEndian.AppendUint64(k, uint64(offset))
}

func checkpointKey(name []byte) []byte { return keyPrefix(kindCheckpoint, name, 0) }

func segmentKey(name []byte, base int64) []byte {
	return binary.BigEndian.AppendUint64(keyPrefix(kindSegment, name, 8), uint64(base))
}

// offsetValue is the value of an offset-index entry; its first
// timeValueSize bytes are the value of the same entry in the time index.
func offsetValue(e segment.IndexEntry) [offsetValueSize]byte {
	var v [offsetValueSize]byte
	binary.BigEndian.PutUint64(v[0:], uint64(e.Segment))
	binary.BigEndian.PutUint64(v[8:], uint64(e.Position))
	binary.BigEndian.PutUint64(v[16:], uint64(e.MaxTimestamp))
	return v
}

// decodeOffsetEntry decodes an offset-index key (the offset is its last 8
// bytes) and value.
func decodeOffsetEntry(k, v []byte) (segment.IndexEntry, error) {
	if len(k) < 8 || len(v) != offsetValueSize {
		return segment.IndexEntry{}, fmt.Errorf("index: malformed offset entry (key %d bytes, value %d bytes)", len(k), len(v))
	}
	return segment.IndexEntry{
		Offset:       int64(binary.BigEndian.Uint64(k[len(k)-8:])),
		Segment:      int64(binary.BigEndian.Uint64(v[0:])),
		Position:     int64(binary.BigEndian.Uint64(v[8:])),
		MaxTimestamp: int64(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

// decodeTimeEntry decodes a time-index key (timestamp and offset are its
// last 16 bytes) and value.
func decodeTimeEntry(k, v []byte) (segment.IndexEntry, error) {
	if len(k) < 16 || len(v) != timeValueSize {
		return segment.IndexEntry{}, fmt.Errorf("index: malformed time entry (key %d bytes, value %d bytes)", len(k), len(v))
	}
	return segment.IndexEntry{
		MaxTimestamp: int64(binary.BigEndian.Uint64(k[len(k)-16:]) ^ (1 << 63)),
		Offset:       int64(binary.BigEndian.Uint64(k[len(k)-8:])),
		Segment:      int64(binary.BigEndian.Uint64(v[0:])),
		Position:     int64(binary.BigEndian.Uint64(v[8:])),
	}, nil
}

func checkpointValue(c segment.Checkpoint) [checkpointValueSize]byte {
	var v [checkpointValueSize]byte
	binary.BigEndian.PutUint64(v[0:], uint64(c.Segment))
	binary.BigEndian.PutUint64(v[8:], uint64(c.Position))
	binary.BigEndian.PutUint64(v[16:], uint64(c.NextOffset))
	binary.BigEndian.PutUint64(v[24:], uint64(c.MaxTimestamp))
	if c.Clean {
		v[32] = 1
	}
	return v
}

func decodeCheckpoint(v []byte) (segment.Checkpoint, error) {
	if len(v) != checkpointValueSize {
		return segment.Checkpoint{}, fmt.Errorf("malformed checkpoint (%d bytes)", len(v))
	}
	return segment.Checkpoint{
		Segment:      int64(binary.BigEndian.Uint64(v[0:])),
		Position:     int64(binary.BigEndian.Uint64(v[8:])),
		NextOffset:   int64(binary.BigEndian.Uint64(v[16:])),
		MaxTimestamp: int64(binary.BigEndian.Uint64(v[24:])),
		Clean:        v[32] == 1,
	}, nil
}

func segmentValue(info segment.SegmentInfo) [segmentValueSize]byte {
	var v [segmentValueSize]byte
	binary.BigEndian.PutUint64(v[0:], uint64(info.Size))
	binary.BigEndian.PutUint64(v[8:], uint64(info.LastOffset))
	binary.BigEndian.PutUint64(v[16:], uint64(info.MaxTimestamp))
	return v
}

func decodeSegmentInfo(v []byte) (segment.SegmentInfo, error) {
	if len(v) != segmentValueSize {
		return segment.SegmentInfo{}, fmt.Errorf("malformed segment info (%d bytes)", len(v))
	}
	return segment.SegmentInfo{
		Size:         int64(binary.BigEndian.Uint64(v[0:])),
		LastOffset:   int64(binary.BigEndian.Uint64(v[8:])),
		MaxTimestamp: int64(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

func versionValue(version uint32) [versionValueSize]byte {
	var v [versionValueSize]byte
	binary.BigEndian.PutUint32(v[:], version)
	return v
}

// decodeVersion decodes the version key's value; version 0 does not exist.
func decodeVersion(v []byte) (uint32, error) {
	if len(v) != versionValueSize || binary.BigEndian.Uint32(v) == 0 {
		return 0, fmt.Errorf("malformed format version %x", v)
	}
	return binary.BigEndian.Uint32(v), nil
}
