package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceConsumeCodecsAndAcks produces with every compression codec and
// every acks setting (idempotent and not), then consumes everything back
// and checks order, keys, values and offsets. It also proves the fetch path
// sent record bytes with sendfile only.
func TestProduceConsumeCodecsAndAcks(t *testing.T) {
	b := startBroker(t, "")
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	acks := map[string][]kgo.Opt{
		"acks0":      {kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()},
		"acks1":      {kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()},
		"acksall":    {kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite()},
		"idempotent": {kgo.RequiredAcks(kgo.AllISRAcks())},
	}
	const n = 500
	for cname, codec := range codecs {
		for aname, aopts := range acks {
			topic := fmt.Sprintf("e2e-%s-%s", cname, aname)
			t.Run(topic, func(t *testing.T) {
				opts := append([]kgo.Opt{kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic),
					kgo.ProducerLinger(5 * time.Millisecond), kgo.AllowAutoTopicCreation()}, aopts...)
				cl := b.client(opts...)
				ctx := ctxTimeout(t, 60*time.Second)
				for i := 0; i < n; i++ {
					r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("value-%d-%s", i, topic))}
					cl.Produce(ctx, r, func(r *kgo.Record, err error) {
						if err != nil {
							t.Errorf("produce %s: %v", r.Key, err)
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				recs := consumeAll(t, b, topic, n)
				if len(recs) != n {
					t.Fatalf("got %d records, want %d", len(recs), n)
				}
				for i, r := range recs {
					if r.Offset != int64(i) || string(r.Key) != fmt.Sprintf("k%d", i) ||
						string(r.Value) != fmt.Sprintf("value-%d-%s", i, topic) {
						t.Fatalf("record %d: offset %d key %q value %q", i, r.Offset, r.Key, r.Value)
					}
				}
			})
		}
	}
	if copied := b.metric("runnel_fetch_copied_bytes_total"); copied != 0 {
		t.Fatalf("fetch copied %v record bytes through user space; want 0 with sendfile", copied)
	}
	if sent := b.metric("runnel_fetch_sendfile_bytes_total"); sent == 0 {
		t.Fatal("no record bytes went through sendfile")
	}
	if n := b.metric("runnel_fsync_duration_seconds_count"); n == 0 {
		t.Fatal("acks=all produce under --fsync always recorded no fdatasync")
	}
	if n := b.metric("runnel_bytes_in_total"); n == 0 {
		t.Fatal("no request bytes counted")
	}
}

// TestListOffsetsByTimeInCompressedBatches: ListOffsets by timestamp finds
// the exact record inside one batch of 100 records, whatever its codec.
func TestListOffsetsByTimeInCompressedBatches(t *testing.T) {
	b := startBroker(t, "")
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	base := time.UnixMilli(1_700_000_000_000)
	for cname, codec := range codecs {
		topic := "bytime-" + cname
		t.Run(cname, func(t *testing.T) {
			// A long linger and one Flush: the 100 records leave as one batch.
			cl := b.client(kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic),
				kgo.ProducerLinger(time.Minute), kgo.AllowAutoTopicCreation())
			ctx := ctxTimeout(t, 60*time.Second)
			for i := 0; i < 100; i++ {
				cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("value %d compresses well well well", i)),
					Timestamp: base.Add(time.Duration(i) * time.Second)}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			adm := kadm.NewClient(cl)
			for _, c := range []struct {
				at   time.Duration
				want int64
			}{{0, 0}, {42 * time.Second, 42}, {42*time.Second + 500*time.Millisecond, 43}, {99 * time.Second, 99}} {
				got, err := adm.ListOffsetsAfterMilli(ctx, base.Add(c.at).UnixMilli(), topic)
				if err != nil {
					t.Fatal(err)
				}
				o, _ := got.Lookup(topic, 0)
				if o.Err != nil || o.Offset != c.want {
					t.Errorf("offset for %v after the first record: %d (%v), want %d", c.at, o.Offset, o.Err, c.want)
				}
				if o.Err == nil && o.Offset == c.want && o.Timestamp != base.Add(time.Duration(c.want)*time.Second).UnixMilli() {
					t.Errorf("timestamp for offset %d: %d", o.Offset, o.Timestamp)
				}
			}
			// DeleteRecords moves the log start into the batch: a time
			// before it now answers the log start, not the batch's start.
			if _, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 30}}}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				at   time.Duration
				want int64
			}{{0, 30}, {42 * time.Second, 42}} {
				got, err := adm.ListOffsetsAfterMilli(ctx, base.Add(c.at).UnixMilli(), topic)
				if err != nil {
					t.Fatal(err)
				}
				if o, _ := got.Lookup(topic, 0); o.Err != nil || o.Offset != c.want {
					t.Errorf("after DeleteRecords to 30, offset for %v: %d (%v), want %d", c.at, o.Offset, o.Err, c.want)
				}
			}
		})
	}
}
