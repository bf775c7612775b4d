package txnlogfmt

import (
	"encoding/binary"
	"fmt"

	"github.com/runnel-io/runnel/internal/kwire"
)

// Value versions.
const (
	// ValueVersion is the version AppendValue writes: Kafka's flexible
	// form, with tagged fields.
	ValueVersion int16 = 1
	// MaxValueVersion is the highest version the decoder reads.
	MaxValueVersion int16 = 1
)

// Status is a transaction's state, as Kafka numbers it in the value's
// transactionStatus field (Kafka's TransactionState ids).
type Status int8

// The states. PrepareEpochFence is never written: it lives in memory only
// while an open transaction is aborted to fence its producer.
const (
	Empty             Status = 0
	Ongoing           Status = 1
	PrepareCommit     Status = 2
	PrepareAbort      Status = 3
	CompleteCommit    Status = 4
	CompleteAbort     Status = 5
	Dead              Status = 6
	PrepareEpochFence Status = 7
)

var statusNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
	"CompleteAbort", "Dead", "PrepareEpochFence"}

// String returns Kafka's name of the state, as DescribeTransactions and
// ListTransactions report it.
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Unknown(%d)", int8(s))
}

// ParseStatus returns the state Kafka names name.
func ParseStatus(name string) (Status, bool) {
	for i, n := range statusNames {
		if n == name {
			return Status(i), true
		}
	}
	return 0, false
}

// TopicPartitions are the partitions of one topic in a transaction.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

// Value is a transactional id's state: the value of its record.
type Value struct {
	ProducerID         int64
	PreviousProducerID int64 // -1: none (version 1, tag 0)
	NextProducerID     int64 // -1: none (version 1, tag 1)
	ProducerEpoch      int16
	TimeoutMs          int32
	Status             Status
	// Partitions of the transaction; nil is written as null (as Kafka
	// writes an Empty transaction's).
	Partitions               []TopicPartitions
	LastUpdateMs             int64
	StartMs                  int64 // -1: no transaction started
	ClientTransactionVersion int16 // version 1, tag 2; 0 by default
}

// Tags of the value's tagged fields (version 1).
const (
	tagPreviousProducerID       = 0
	tagNextProducerID           = 1
	tagClientTransactionVersion = 2
)

// AppendValue appends v as version 1, the flexible form. Only a topic name
// longer than 32767 bytes fails (ErrTooLong), and dst is then returned as
// it was.
func AppendValue(dst []byte, v *Value) ([]byte, error) { return appendValue(dst, v, ValueVersion) }

// AppendValueV0 appends v as version 0, which has no tagged fields.
func AppendValueV0(dst []byte, v *Value) ([]byte, error) { return appendValue(dst, v, 0) }

func appendValue(dst []byte, v *Value, version int16) ([]byte, error) {
	w := kwire.Writer{B: dst, TooLong: ErrTooLong}
	w.Int16(version)
	w.Flexible = version >= 1
	w.Int64(v.ProducerID)
	w.Int16(v.ProducerEpoch)
	w.Int32(v.TimeoutMs)
	w.Int8(int8(v.Status))
	if v.Partitions == nil {
		w.Length(-1, true)
	} else {
		w.Length(len(v.Partitions), true)
		for _, tp := range v.Partitions {
			w.String("topic", tp.Topic)
			w.Length(len(tp.Partitions), true)
			for _, p := range tp.Partitions {
				w.Int32(p)
			}
			if w.Flexible {
				w.B = append(w.B, 0) // no tagged fields
			}
		}
	}
	w.Int64(v.LastUpdateMs)
	w.Int64(v.StartMs)
	if w.Flexible {
		var n uint64
		if v.PreviousProducerID != -1 {
			n++
		}
		if v.NextProducerID != -1 {
			n++
		}
		if v.ClientTransactionVersion != 0 {
			n++
		}
		w.B = binary.AppendUvarint(w.B, n)
		if v.PreviousProducerID != -1 {
			w.B = append(w.B, tagPreviousProducerID, 8)
			w.Int64(v.PreviousProducerID)
		}
		if v.NextProducerID != -1 {
			w.B = append(w.B, tagNextProducerID, 8)
			w.Int64(v.NextProducerID)
		}
		if v.ClientTransactionVersion != 0 {
			w.B = append(w.B, tagClientTransactionVersion, 2)
			w.Int16(v.ClientTransactionVersion)
		}
	}
	if w.Err != nil {
		return dst, w.Err
	}
	return w.B, nil
}

// DecodeValue decodes a value of versions 0 and 1. A nil b (a null record
// value) is a tombstone: it returns tombstone true and no error.
func DecodeValue(b []byte) (v Value, tombstone bool, err error) {
	if b == nil {
		return Value{}, true, nil
	}
	r := kwire.Reader{B: b, Record: "value", Malformed: ErrMalformed}
	version := r.Int16("version")
	if r.Err != nil {
		return Value{}, false, r.Err
	}
	if version < 0 || version > MaxValueVersion {
		return Value{}, false, &UnknownVersionError{Record: "value", Version: version}
	}
	r.Flexible = version >= 1
	v = Value{PreviousProducerID: -1, NextProducerID: -1}
	v.ProducerID = r.Int64("producerId")
	v.ProducerEpoch = r.Int16("producerEpoch")
	v.TimeoutMs = r.Int32("transactionTimeoutMs")
	v.Status = Status(r.Int8("transactionStatus"))
	// A topic takes at least 2 bytes (its length), 1 flexible, plus its
	// partitions' count: at least 3 and 2.
	minTopic := 6
	if r.Flexible {
		minTopic = 3
	}
	if n := r.Count("transactionPartitions", minTopic, true); n >= 0 && r.Err == nil {
		v.Partitions = make([]TopicPartitions, 0, n)
		for i := 0; i < n && r.Err == nil; i++ {
			tp := TopicPartitions{Topic: r.String("topic")}
			m := r.Count("partitionIds", 4, false)
			if r.Err == nil {
				tp.Partitions = make([]int32, m)
				for j := range tp.Partitions {
					tp.Partitions[j] = r.Int32("partitionId")
				}
			}
			r.Tags(nil)
			v.Partitions = append(v.Partitions, tp)
		}
	}
	v.LastUpdateMs = r.Int64("transactionLastUpdateTimestampMs")
	v.StartMs = r.Int64("transactionStartTimestampMs")
	r.Tags(func(tag uint32, b []byte) {
		switch {
		case tag == tagPreviousProducerID && len(b) == 8:
			v.PreviousProducerID = int64(binary.BigEndian.Uint64(b))
		case tag == tagNextProducerID && len(b) == 8:
			v.NextProducerID = int64(binary.BigEndian.Uint64(b))
		case tag == tagClientTransactionVersion && len(b) == 2:
			v.ClientTransactionVersion = int16(binary.BigEndian.Uint16(b))
		case tag <= tagClientTransactionVersion:
			r.Fail("tagged fields", "tag %d of %d bytes", tag, len(b))
		}
	})
	if r.Err != nil {
		return Value{}, false, r.Err
	}
	return v, false, nil
}
