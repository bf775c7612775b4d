// Package offsetsfmt encodes and decodes the records of the internal topic
// __consumer_offsets with Kafka's own schemas (OffsetCommitKey,
// OffsetCommitValue, GroupMetadataKey, GroupMetadataValue), so that tools
// that read the topic (Burrow, lag exporters, kafka-console-consumer with
// Kafka's formatter) decode what runnel writes, and runnel reads what such a
// topic holds.
//
// # Layout (Kafka's wire format; never change it)
//
// Every key and every value starts with a big-endian int16 version. A key's
// version is the kind of record: 0 and 1 an offset commit, 2 group metadata.
// Then come the fields of that version, in order:
//
//	int16, int32, int64   big-endian
//	string                int16 length, then UTF-8 bytes (never null)
//	nullable string       int16 length, -1 for null
//	bytes                 int32 length, then the bytes
//	array                 int32 count, then the elements
//
// Version 4 of both values is Kafka's "flexible" form: strings, bytes and
// arrays carry an unsigned varint of length+1 (0 for null) instead, and the
// value and every array element end with tagged fields (an unsigned varint
// count, then for each an unsigned varint tag, an unsigned varint size and
// that many bytes), which the decoders skip.
//
//	OffsetCommitKey v0, v1:  group string, topic string, partition int32
//	GroupMetadataKey v2:     group string
//	OffsetCommitValue:       offset int64, leaderEpoch int32 (v3+),
//	                         metadata string, commitTimestamp int64,
//	                         expireTimestamp int64 (v1 only)
//	GroupMetadataValue:      protocolType string, generation int32,
//	                         protocol nullable string, leader nullable string,
//	                         currentStateTimestamp int64 (v2+),
//	                         members array of: memberId string,
//	                         groupInstanceId nullable string (v3+), clientId
//	                         string, clientHost string, rebalanceTimeout
//	                         int32 (v1+), sessionTimeout int32, subscription
//	                         bytes, assignment bytes
//
// A record with a null value is a tombstone: the offset or group it keys is
// deleted. docs/format.md has the same tables field by field.
//
// The encoders write what Kafka writes today: offset keys v1, group keys
// v2, offset values v3 (v1 when an expire timestamp is set) and group values
// v3. The decoders read every version Kafka has defined (values v0 to v4),
// copy what they return (nothing aliases the input), and refuse lengths past
// the input and negative or impossible counts with ErrMalformed, never
// allocating more than a small multiple of the input. Bytes after the last
// field are ignored, as Kafka's readers ignore them. A key of a version this
// package does not know (Kafka's newer group types write such records) is an
// *UnknownVersionError, which a loader logs and skips, as Kafka does.
package offsetsfmt
