// Package testbatch builds valid Kafka RecordBatch v2 bytes for tests and
// benchmarks. Production code never imports it.
package testbatch

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spec describes a batch to build.
type Spec struct {
	BaseOffset    int64
	Timestamp     int64 // of the first record, in ms; records follow 1 ms apart
	ProducerID    int64 // used only when Idempotent; otherwise -1 is written
	Idempotent    bool
	ProducerEpoch int16
	BaseSequence  int32
	Attributes    int16
	Values        [][]byte // one record each, no headers
	// Keys are the records' keys, by index; a record past the end of
	// Keys, or whose key is nil, has a null key.
	Keys [][]byte
	// Tombstones marks records whose value is null, by index.
	Tombstones []bool
}

// Make returns the bytes of one uncompressed batch.
func Make(s Spec) []byte {
	b := make([]byte, 61, 61+len(s.Values)*16)
	for i, v := range s.Values {
		var rec []byte
		rec = append(rec, 0)                     // attributes
		rec = binary.AppendVarint(rec, int64(i)) // timestamp delta
		rec = binary.AppendVarint(rec, int64(i)) // offset delta
		if i < len(s.Keys) && s.Keys[i] != nil {
			rec = binary.AppendVarint(rec, int64(len(s.Keys[i])))
			rec = append(rec, s.Keys[i]...)
		} else {
			rec = binary.AppendVarint(rec, -1) // null key
		}
		if i < len(s.Tombstones) && s.Tombstones[i] {
			rec = binary.AppendVarint(rec, -1) // null value
		} else {
			rec = binary.AppendVarint(rec, int64(len(v))) // value length
			rec = append(rec, v...)                       // value
		}
		rec = binary.AppendVarint(rec, 0) // headers
		b = binary.AppendVarint(b, int64(len(rec)))
		b = append(b, rec...)
	}
	n := len(s.Values)
	binary.BigEndian.PutUint64(b[0:], uint64(s.BaseOffset))
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[12:], 0)
	b[16] = 2
	binary.BigEndian.PutUint16(b[21:], uint16(s.Attributes))
	binary.BigEndian.PutUint32(b[23:], uint32(max(n-1, 0)))
	binary.BigEndian.PutUint64(b[27:], uint64(s.Timestamp))
	binary.BigEndian.PutUint64(b[35:], uint64(s.Timestamp+int64(max(n-1, 0))))
	pid := int64(-1)
	if s.Idempotent {
		pid = s.ProducerID
	}
	binary.BigEndian.PutUint64(b[43:], uint64(pid))
	binary.BigEndian.PutUint16(b[51:], uint16(s.ProducerEpoch))
	binary.BigEndian.PutUint32(b[53:], uint32(s.BaseSequence))
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// Values returns n records of size bytes each, filled with a pattern that
// depends on seed so that tests can tell batches apart.
func Values(n, size int, seed byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		v := make([]byte, size)
		for j := range v {
			v[j] = seed + byte(i) + byte(j)
		}
		out[i] = v
	}
	return out
}

// Sized returns a batch of roughly total bytes made of records of recSize.
func Sized(total, recSize int, ts int64) []byte {
	n := max((total-61)/(recSize+8), 1)
	return Make(Spec{Timestamp: ts, Values: Values(n, recSize, 1)})
}
