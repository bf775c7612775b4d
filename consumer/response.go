package consumer

import (
	"encoding/binary"
	"math"

	"github.com/runnel-io/runnel/segment"
)

// Aborted is one aborted transaction in a fetch response.
type Aborted struct {
	ProducerID  int64
	FirstOffset int64
}

// DivergingEpoch tells a follower where its log diverges from the leader's.
type DivergingEpoch struct {
	Epoch     int32
	EndOffset int64
}

// CurrentLeader tells a client which broker leads the partition now.
type CurrentLeader struct {
	LeaderID    int32
	LeaderEpoch int32
}

// PartitionData is one partition of a fetch response.
type PartitionData struct {
	Partition            int32
	ErrorCode            int16
	HighWatermark        int64
	LastStableOffset     int64
	LogStartOffset       int64
	Aborted              []Aborted // nil is encoded as null
	PreferredReadReplica int32
	DivergingEpoch       *DivergingEpoch
	CurrentLeader        *CurrentLeader
	// Records is the file region holding the partition's batches; a zero
	// Length sends an empty record set. The response releases it.
	Records segment.Region
}

// TopicData is one topic of a fetch response.
type TopicData struct {
	Topic      string
	TopicID    [16]byte
	Partitions []PartitionData
}

// Response is a whole fetch response.
type Response struct {
	Version        int16
	CorrelationID  int32
	ThrottleMillis int32
	ErrorCode      int16
	SessionID      int32
	Topics         []TopicData
}

// splice marks where a file region goes in the encoded bytes.
type splice struct {
	at     int // position in buf
	region *segment.Region
}

// Encoded is a response ready to send: buf holds every protocol byte, and
// each splice's region is sent at its position.
type Encoded struct {
	buf     []byte
	splices []splice
	size    int64 // bytes on the wire, size prefix included
	// throttleAt is where throttle_time_ms is in buf; 0: the version has
	// none.
	throttleAt int
}

// SetThrottleMillis sets the response's throttle_time_ms (a client over
// its quota is told how long it is throttled), where its version has one.
func (e *Encoded) SetThrottleMillis(ms int32) {
	if e.throttleAt > 0 {
		binary.BigEndian.PutUint32(e.buf[e.throttleAt:], uint32(ms))
	}
}

// ThrottleMillis returns the response's throttle_time_ms, 0 where its
// version has none.
func (e *Encoded) ThrottleMillis() int32 {
	if e.throttleAt == 0 {
		return 0
	}
	return int32(binary.BigEndian.Uint32(e.buf[e.throttleAt:]))
}

// Size returns the number of bytes Send will write.
func (e *Encoded) Size() int64 { return e.size }

// Release drops the references on every region. Send calls it.
func (e *Encoded) Release() {
	for _, s := range e.splices {
		s.region.Release()
	}
	e.splices = nil
}

// MaxSize is the largest encoded response, size prefix included: the
// prefix is an int32 and counts the bytes after it.
const MaxSize = 4 + math.MaxInt32

// Encode lays out r in wire form (response header included) into buf, which
// it may grow and returns inside the Encoded. Regions stay referenced until
// Release.
//
// The encoded response is never larger than MaxSize. Callers bound the
// record bytes far below it (the server by its fetch byte limit); should
// the regions still not fit, the last ones are released and sent as empty
// record sets, which a client fetches again from the same offset.
func Encode(r *Response, buf []byte) *Encoded {
	e := encode(r, buf)
	if e.size <= MaxSize {
		return e
	}
	over := e.size - MaxSize
	for ti := len(r.Topics) - 1; ti >= 0 && over > 0; ti-- {
		parts := r.Topics[ti].Partitions
		for pi := len(parts) - 1; pi >= 0 && over > 0; pi-- {
			if n := parts[pi].Records.Length; n > 0 {
				over -= n
				parts[pi].Records.Release()
				parts[pi].Records = segment.Region{}
			}
		}
	}
	// The protocol bytes do not grow when record sets empty, so the
	// response fits now.
	return encode(r, e.buf)
}

func encode(r *Response, buf []byte) *Encoded {
	e := &Encoded{buf: buf[:0]}
	v := r.Version
	flexible := v >= 12
	b := append(e.buf, 0, 0, 0, 0) // size, filled in at the end
	b = binary.BigEndian.AppendUint32(b, uint32(r.CorrelationID))
	if flexible {
		b = append(b, 0) // response header tagged fields
	}
	if v >= 1 {
		e.throttleAt = len(b)
		b = binary.BigEndian.AppendUint32(b, uint32(r.ThrottleMillis))
	}
	if v >= 7 {
		b = binary.BigEndian.AppendUint16(b, uint16(r.ErrorCode))
		b = binary.BigEndian.AppendUint32(b, uint32(r.SessionID))
	}
	b = appendArrayLen(b, len(r.Topics), flexible)
	for ti := range r.Topics {
		t := &r.Topics[ti]
		if v <= 12 {
			b = appendString(b, t.Topic, flexible)
		} else {
			b = append(b, t.TopicID[:]...)
		}
		b = appendArrayLen(b, len(t.Partitions), flexible)
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			b = binary.BigEndian.AppendUint32(b, uint32(p.Partition))
			b = binary.BigEndian.AppendUint16(b, uint16(p.ErrorCode))
			b = binary.BigEndian.AppendUint64(b, uint64(p.HighWatermark))
			if v >= 4 {
				b = binary.BigEndian.AppendUint64(b, uint64(p.LastStableOffset))
			}
			if v >= 5 {
				b = binary.BigEndian.AppendUint64(b, uint64(p.LogStartOffset))
			}
			if v >= 4 {
				if p.Aborted == nil {
					b = appendNullArray(b, flexible)
				} else {
					b = appendArrayLen(b, len(p.Aborted), flexible)
					for _, a := range p.Aborted {
						b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
						b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
						if flexible {
							b = append(b, 0)
						}
					}
				}
			}
			if v >= 11 {
				b = binary.BigEndian.AppendUint32(b, uint32(p.PreferredReadReplica))
			}
			n := p.Records.Length
			if flexible {
				b = binary.AppendUvarint(b, uint64(n)+1)
			} else {
				b = binary.BigEndian.AppendUint32(b, uint32(n))
			}
			if n > 0 {
				e.splices = append(e.splices, splice{at: len(b), region: &p.Records})
				e.size += n
			} else {
				p.Records.Release()
			}
			if flexible {
				b = appendPartitionTags(b, p)
			}
		}
		if flexible {
			b = append(b, 0)
		}
	}
	if flexible {
		b = append(b, 0)
	}
	e.size += int64(len(b))
	binary.BigEndian.PutUint32(b[0:], uint32(e.size-4))
	e.buf = b
	return e
}

func appendPartitionTags(b []byte, p *PartitionData) []byte {
	n := 0
	if p.DivergingEpoch != nil {
		n++
	}
	if p.CurrentLeader != nil {
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	if d := p.DivergingEpoch; d != nil {
		b = append(b, 0, 4+8+1) // tag 0, size
		b = binary.BigEndian.AppendUint32(b, uint32(d.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(d.EndOffset))
		b = append(b, 0)
	}
	if c := p.CurrentLeader; c != nil {
		b = append(b, 1, 4+4+1) // tag 1, size
		b = binary.BigEndian.AppendUint32(b, uint32(c.LeaderID))
		b = binary.BigEndian.AppendUint32(b, uint32(c.LeaderEpoch))
		b = append(b, 0)
	}
	return b
}

func appendArrayLen(b []byte, n int, flexible bool) []byte {
	if flexible {
		return binary.AppendUvarint(b, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

func appendNullArray(b []byte, flexible bool) []byte {
	if flexible {
		return append(b, 0)
	}
	return binary.BigEndian.AppendUint32(b, 0xffffffff)
}

func appendString(b []byte, s string, flexible bool) []byte {
	if flexible {
		b = binary.AppendUvarint(b, uint64(len(s))+1)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	}
	return append(b, s...)
}
