// Package segment owns runnel's on-disk log: the RecordBatch v2 framing, one
// segment file, and the partition log built from ordered segments.
//
// # On-disk format (never change silently)
//
// A partition is a folder of segment files. Each file is named by the offset
// of its first batch, as 20 decimal digits, with the suffix ".log":
//
//	00000000000000000000.log
//	00000000000001048576.log
//
// A segment file is a plain concatenation of Kafka RecordBatch v2 batches,
// byte for byte what the Kafka wire protocol carries, so a fetch can send a
// file range to a socket unchanged. After the last batch of the active
// segment the file may hold zeros: space reserved ahead of the writer. A
// sealed segment is cut to the exact end of its last batch.
//
// Every batch starts with a 61-byte header, big-endian:
//
//	offset size field
//	     0    8 baseOffset            rewritten by the broker (outside the CRC)
//	     8    4 batchLength           bytes after this field: total size - 12
//	    12    4 partitionLeaderEpoch  rewritten by the broker (outside the CRC)
//	    16    1 magic                 must be 2
//	    17    4 crc                   CRC-32C (Castagnoli) of bytes 21..end
//	    21    2 attributes            compression(0-2) timestampType(3)
//	                                  transactional(4) control(5)
//	    23    4 lastOffsetDelta
//	    27    8 baseTimestamp
//	    35    8 maxTimestamp
//	    43    8 producerId
//	    51    2 producerEpoch
//	    53    4 baseSequence
//	    57    4 recordCount
//	    61    … records (possibly compressed)
//
// The constants below with names ending in Offset, HeaderSize and Magic are
// part of that format.
//
// # Recovery
//
// Recovery trusts everything before the partition's last checkpoint and
// scans the rest batch by batch (length, magic, CRC-32C, offsets in
// sequence). The log is cut at the first batch that fails, and later
// segments are removed. See Log for the durability rules.
package segment
