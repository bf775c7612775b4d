package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFetchPaths serves the same log through each --fetch-path: sealed and
// active segments (1 MiB segments, 3 MiB of records), every record back in
// order, and the record bytes counted by that path's metric and no other.
func TestFetchPaths(t *testing.T) {
	metrics := map[string]string{
		"sendfile": "runnel_fetch_sendfile_bytes_total",
		"mmap":     "runnel_fetch_mapped_bytes_total",
		"copy":     "runnel_fetch_copied_bytes_total",
	}
	for path := range metrics {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, "", "--fetch-path", path, "--fsync", "never")
			const topic, n = "paths", 3000
			resp, err := kadm.NewClient(b.client()).CreateTopic(ctxTimeout(t, 30*time.Second), 1, 1,
				map[string]*string{"segment.bytes": kadm.StringPtr("1048576")}, topic)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				t.Fatal(err)
			}
			cl := b.client(kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
			value := make([]byte, 1000)
			recs := make([]*kgo.Record, n)
			for i := range recs {
				value[0], value[999] = byte(i), byte(i>>8)
				recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: append([]byte(nil), value...)}
			}
			if err := cl.ProduceSync(ctxTimeout(t, 60*time.Second), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			got := consumeAll(t, b, topic, n)
			if len(got) != n {
				t.Fatalf("got %d records, want %d", len(got), n)
			}
			for i, r := range got {
				if r.Offset != int64(i) || string(r.Key) != fmt.Sprintf("k%d", i) ||
					len(r.Value) != 1000 || r.Value[0] != byte(i) || r.Value[999] != byte(i>>8) {
					t.Fatalf("record %d: offset %d key %q", i, r.Offset, r.Key)
				}
			}
			for p, name := range metrics {
				v := b.metric(name)
				switch {
				case p == path && v < n*1000:
					t.Errorf("%s = %v after fetching %d bytes of values through %s", name, v, n*1000, path)
				case p != path && v != 0:
					t.Errorf("%s = %v with --fetch-path %s", name, v, path)
				}
			}
		})
	}
}
