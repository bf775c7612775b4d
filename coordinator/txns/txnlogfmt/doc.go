// Package txnlogfmt encodes and decodes the records of the internal topic
// __transaction_state with Kafka's own schemas (TransactionLogKey version 0,
// TransactionLogValue versions 0 and 1), so that a transaction coordinator
// reads the topic as Kafka wrote it and tools that decode the topic with
// Kafka's formatter read what runnel writes.
//
// # Layout (Kafka's wire format; never change it)
//
// Every key and every value starts with a big-endian int16 version.
//
//	TransactionLogKey v0:    transactionalId string
//	TransactionLogValue:     producerId int64, producerEpoch int16,
//	                         transactionTimeoutMs int32,
//	                         transactionStatus int8,
//	                         transactionPartitions nullable array of:
//	                             topic string, partitionIds array of int32
//	                         transactionLastUpdateTimestampMs int64,
//	                         transactionStartTimestampMs int64
//
// Version 0 uses Kafka's classic encoding: a string is an int16 length and
// UTF-8 bytes, an array an int32 count (-1 for null) and its elements.
// Version 1 is Kafka's flexible form: strings and arrays carry an unsigned
// varint of length+1 (0 for null), and the value and each partitions
// element end with tagged fields (an unsigned varint count, then per field
// an unsigned varint tag, an unsigned varint size and the bytes). The value's
// tagged fields are previousProducerId int64 (tag 0, default -1),
// nextProducerId int64 (tag 1, default -1) and clientTransactionVersion
// int16 (tag 2, default 0); a tagged field equal to its default is not
// written, as Kafka's generated code omits it, and unknown tags are skipped.
//
// A record with a null value is a tombstone: its transactional id has
// expired. docs/format.md has the same tables field by field.
//
// The encoder writes version 1 (AppendValue) or version 0 (AppendValueV0,
// which drops the tagged fields). The decoders copy what they return,
// refuse lengths and counts past the input with ErrMalformed before
// allocating for them, ignore bytes after the last field as Kafka does, and
// answer a version they do not know with *UnknownVersionError, which a
// loader logs and skips.
//
// The partition of the topic that holds a transactional id, and so whose
// leader coordinates it, is abs(javaStringHash(id)) % partitions: the
// function of __consumer_offsets, offsetsfmt.PartitionFor.
package txnlogfmt
