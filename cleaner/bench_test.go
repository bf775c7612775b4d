package cleaner

import (
	"context"
	"fmt"
	"testing"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/segment"
)

// BenchmarkCleanerThroughput cleans a sealed, wholly dirty log of keyed
// records (10,000 keys, each overwritten about 30 times, 100-byte values,
// batches of 50 records) in 8 MiB segments, and in 1 MiB ones, where the
// three syncs of each segment's swap (the new file, the index, the
// directory) weigh more; MB/s is dirty log bytes cleaned per second,
// reading, rebuilding batches and writing the new segments included. The
// compressed logs are smaller for the same records, so their MB/s counts
// fewer bytes.
//
//	go test -run '^$' -bench CleanerThroughput -benchtime 5x ./cleaner/
func BenchmarkCleanerThroughput(b *testing.B) {
	for _, codec := range []struct {
		name    string
		c       int16
		segment string
	}{{"none/seg8MiB", compression.None, "8388608"}, {"none/seg1MiB", compression.None, "1048576"},
		{"lz4/seg8MiB", compression.LZ4, "8388608"}, {"zstd/seg8MiB", compression.Zstd, "8388608"}} {
		b.Run(codec.name, func(b *testing.B) {
			topic := cluster.Topic{Name: "bench", ID: cluster.TopicID{7}, Partitions: 1, Configs: map[string]string{
				"cleanup.policy": "compact", "segment.bytes": codec.segment}}
			var dirty int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				br := openBroker(b, b.TempDir(), topic)
				value := make([]byte, 100)
				var recs []segment.Record
				for n := 0; n < 300_000/50; n++ {
					recs = recs[:0]
					for j := 0; j < 50; j++ {
						k := (n*50 + j) * 7919 % 10_000
						copy(value, fmt.Sprintf("%08d-%08d", k, n))
						recs = append(recs, segment.Record{Offset: int64(j), Timestamp: 1000, Key: []byte(fmt.Sprintf("key-%05d", k)), Value: value})
					}
					batch, err := segment.BuildBatch(nil, segment.BatchSpec{Attributes: codec.c, LastOffsetDelta: 49,
						ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := br.p.Append(batch, 1); err != nil {
						b.Fatal(err)
					}
				}
				br.sealAll()
				dirty = br.p.Log().Size()
				cl, err := New(br.m, Options{Logger: quiet()})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(dirty)
				b.StartTimer()
				if err := cl.CleanAll(context.Background(), true); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if i == 0 {
					b.ReportMetric(float64(cl.Stats().BytesAfter.Load())/float64(cl.Stats().BytesCleaned.Load()), "kept/cleaned")
				}
				br.close()
			}
		})
	}
}
