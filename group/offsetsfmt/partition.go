package offsetsfmt

import "unicode/utf16"

// PartitionFor returns the partition of __consumer_offsets that holds
// group's records, and so whose leader coordinates the group, exactly as
// Kafka computes it: abs(hash) % partitions, where hash is Java's
// String.hashCode of the group id (h = 31·h + c over its UTF-16 code units,
// in int32 arithmetic) and abs is Kafka's Utils.abs, which maps MinInt32 to
// 0. Bytes of group that are not valid UTF-8 count as U+FFFD each, as a Java
// decoder replaces them. partitions must be positive.
func PartitionFor(group string, partitions int32) int32 {
	if partitions <= 0 {
		panic("offsetsfmt: PartitionFor with a partition count below 1")
	}
	h := javaStringHash(group)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// javaStringHash is Java's String.hashCode of s.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s { // invalid bytes come as utf8.RuneError
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + int32(hi)
			h = 31*h + int32(lo)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}
