package offsetsfmt

import "testing"

// TestPartitionFor: the partitions Kafka picks. The hashes are Java's
// String.hashCode: "hello" is 99162322 (a value Java's documentation
// examples show), and "polygenelubricants", "GydZG_" and "DESIGNING
// WORKHOUSES" are the well-known strings whose hash is Integer.MIN_VALUE,
// which Kafka's Utils.abs maps to 0 (Math.abs would leave it negative). The
// others were computed by hand over UTF-16 code units; "g😀" is 'g' (103),
// then U+1F600 as the surrogate pair 0xD83D 0xDE00:
// (103·31 + 55357)·31 + 56832 = 1871882.
func TestPartitionFor(t *testing.T) {
	cases := []struct {
		group      string
		hash       int32
		partitions int32
		want       int32
	}{
		{"", 0, 50, 0},
		{"a", 97, 50, 47},
		{"a", 97, 7, 6},
		{"hello", 99162322, 50, 22},
		{"polygenelubricants", -1 << 31, 50, 0},
		{"polygenelubricants", -1 << 31, 7, 0},
		{"GydZG_", -1 << 31, 50, 0},
		{"DESIGNING WORKHOUSES", -1 << 31, 3, 0},
		{"console-consumer-12345", 158455506, 50, 6},
		{"billing", -109829509, 50, 9},
		{"billing", -109829509, 7, 6},
		{"grüppe", -1233264812, 50, 12},
		{"组", 32452, 50, 2},
		{"g😀", 1871882, 50, 32},
		{"😀😀-orders", -2002596724, 50, 24},
		{"😀😀-orders", -2002596724, 7, 2},
		{"billing", -109829509, 1, 0},
	}
	for _, tc := range cases {
		if h := javaStringHash(tc.group); h != tc.hash {
			t.Errorf("hash(%q) = %d, want %d", tc.group, h, tc.hash)
		}
		if got := PartitionFor(tc.group, tc.partitions); got != tc.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", tc.group, tc.partitions, got, tc.want)
		}
	}
}
