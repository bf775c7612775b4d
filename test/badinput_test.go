package test

import (
	"bytes"
	"context"
	wire "encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
)

// The bad-input tests talk to a real broker over raw TCP. Every case checks
// three things: the documented answer (an error code, or the connection
// closed), a log line an operator can find, and that the broker keeps
// serving other clients afterwards.

const (
	maxRequestBytes = 1 << 20 // --max-request-bytes of the bad-input broker
	ioTimeout       = 30 * time.Second
)

// TestBadInput sends malformed frames and refused requests by hand.
func TestBadInput(t *testing.T) {
	b := startBroker(t, "", "--max-request-bytes", strconv.Itoa(maxRequestBytes))
	canary := newCanary(t, b)

	// closes checks a connection that must be closed for what it sent.
	type closes struct {
		name   string
		send   func(rc *rawConn)
		reason string // runnel_bad_requests_total label
		msg    string // Warn message logged
	}
	frame := func(payload []byte) []byte {
		return append(wire.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
	}
	header := func(key, version int16, clientID string) []byte {
		h := wire.BigEndian.AppendUint16(nil, uint16(key))
		h = wire.BigEndian.AppendUint16(h, uint16(version))
		h = wire.BigEndian.AppendUint32(h, 7)
		h = wire.BigEndian.AppendUint16(h, uint16(len(clientID)))
		return append(h, clientID...)
	}
	random := func(seed uint64, n int) []byte {
		r := rand.New(rand.NewPCG(seed, seed))
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		return p
	}
	const (
		frameMsg  = "closing connection: bad request frame"
		headerMsg = "closing connection: undecodable request header"
		badReqMsg = "closing connection: bad request"
	)
	for _, tc := range []closes{
		{"oversized frame", func(rc *rawConn) { rc.write(wire.BigEndian.AppendUint32(nil, maxRequestBytes+1)) }, "frame", frameMsg},
		{"oversized frame with body", func(rc *rawConn) {
			rc.write(frame(make([]byte, maxRequestBytes+1))) // the broker may close before reading it all
		}, "frame", frameMsg},
		{"negative frame size", func(rc *rawConn) { rc.write([]byte{0xff, 0xff, 0xff, 0xff}) }, "frame", frameMsg},
		{"most negative frame size", func(rc *rawConn) { rc.write([]byte{0x80, 0, 0, 0}) }, "frame", frameMsg},
		{"garbage: HTTP request", func(rc *rawConn) { rc.write([]byte("GET / HTTP/1.1\r\nHost: runnel\r\n\r\n")) }, "frame", frameMsg},
		{"garbage: TLS client hello", func(rc *rawConn) { rc.write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}) }, "frame", frameMsg},
		{"garbage: random frame", func(rc *rawConn) { rc.write(frame(random(1, 200))) }, "header", headerMsg},
		{"garbage: random frame 2", func(rc *rawConn) { rc.write(frame(random(2, 37))) }, "header", headerMsg},
		{"empty frame", func(rc *rawConn) { rc.write(frame(nil)) }, "header", headerMsg},
		{"truncated header", func(rc *rawConn) { rc.write(frame(header(3, 9, "")[:7])) }, "header", headerMsg},
		{"client id longer than frame", func(rc *rawConn) { rc.write(frame(header(3, 9, "abcdef")[:12])) }, "header", headerMsg},
		{"bad client id length", func(rc *rawConn) {
			h := header(3, 4, "")
			wire.BigEndian.PutUint16(h[8:], uint16(0xfff0)) // -16
			rc.write(frame(h))
		}, "header", headerMsg},
		{"malformed header tags", func(rc *rawConn) { rc.write(frame(append(header(3, 9, "c"), 0x05))) }, "header", headerMsg},
		{"unknown API key 9999", func(rc *rawConn) { rc.write(frame(append(header(9999, 0, "c"), 0, 0, 0, 0))) }, "header", headerMsg},
		{"negative API version", func(rc *rawConn) { rc.write(frame(append(header(3, -1, "c"), 0, 0, 0, 0))) }, "header", headerMsg},
		{"API runnel does not serve (AlterReplicaLogDirs)", func(rc *rawConn) {
			req := kmsg.NewPtrAlterReplicaLogDirsRequest()
			req.SetVersion(1)
			rc.send(req)
		}, "AlterReplicaLogDirs", badReqMsg},
		{"unsupported version Produce v2", func(rc *rawConn) {
			req := kmsg.NewPtrProduceRequest()
			req.SetVersion(2)
			req.Acks, req.TimeoutMillis = 1, 1000
			rc.send(req)
		}, "Produce", badReqMsg},
		{"unsupported version Fetch v17", func(rc *rawConn) {
			req := kmsg.NewPtrFetchRequest()
			req.SetVersion(17)
			rc.send(req)
		}, "Fetch", badReqMsg},
		{"malformed body Metadata v9", func(rc *rawConn) {
			rc.write(frame(append(append(header(3, 9, "c"), 0), 0x7f, 0x7f, 0x7f, 0x7f))) // no header tags, then 126 topics in 3 bytes
		}, "Metadata", badReqMsg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := labelledMetric(t, b, "runnel_bad_requests_total", `reason="`+tc.reason+`"`)
			rc := dialRaw(t, b.addr)
			tc.send(rc)
			rc.expectClosed()
			if got := labelledMetric(t, b, "runnel_bad_requests_total", `reason="`+tc.reason+`"`); got != before+1 {
				t.Errorf("runnel_bad_requests_total{reason=%q} = %v, want %v", tc.reason, got, before+1)
			}
			waitLog(t, b, "WARN", tc.msg, "remote="+rc.local())
			canary.check(t)
		})
	}

	t.Run("forged tagged-field count is refused before decoding", func(t *testing.T) {
		// DescribeCluster v1 announcing 952,391,828 tagged fields in a
		// 7-byte body. Were the count believed, the reader would loop once
		// per announced field; the schema walk refuses it and says where.
		rc := dialRaw(t, b.addr)
		rc.write(frame(append(append(header(60, 1, "c"), 0), "\xc7B\x94\xb1\x91\xc6\x03"...)))
		rc.expectClosed()
		waitLog(t, b, "WARN", badReqMsg, "remote="+rc.local(), "tagged fields")
		canary.check(t)
	})

	t.Run("ApiVersions above v4 answers UNSUPPORTED_VERSION in v0", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		for _, v := range []int16{5, 127} {
			req := kmsg.NewPtrApiVersionsRequest()
			req.SetVersion(v)
			req.ClientSoftwareName, req.ClientSoftwareVersion = "raw", "1"
			corr := rc.send(req)
			body := rc.recvFrame(corr, false) // the ApiVersions response header has no tags
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.SetVersion(0)
			if err := resp.ReadFrom(body); err != nil {
				t.Fatalf("v%d: decoding the v0 answer: %v", v, err)
			}
			if resp.ErrorCode != kerr.UnsupportedVersion.Code {
				t.Fatalf("v%d: error code %d, want %d (UNSUPPORTED_VERSION)", v, resp.ErrorCode, kerr.UnsupportedVersion.Code)
			}
			if want := 2 + 4 + 6*len(resp.ApiKeys); len(body) != want {
				t.Fatalf("v%d: body is %d bytes, a v0 body with %d keys is %d", v, len(body), len(resp.ApiKeys), want)
			}
			keys := map[int16]kmsg.ApiVersionsResponseApiKey{}
			for _, k := range resp.ApiKeys {
				keys[k.ApiKey] = k
			}
			// Produce is listed from v0 though v0-v2 are refused (KAFKA-18659:
			// older librdkafka stops compressing otherwise).
			for _, want := range []kmsg.ApiVersionsResponseApiKey{
				{ApiKey: 0, MinVersion: 0, MaxVersion: 11}, {ApiKey: 1, MinVersion: 4, MaxVersion: 16},
				{ApiKey: 3, MinVersion: 0, MaxVersion: 12}, {ApiKey: 18, MinVersion: 0, MaxVersion: 4},
			} {
				if got := keys[want.ApiKey]; got.MinVersion != want.MinVersion || got.MaxVersion != want.MaxVersion {
					t.Errorf("v%d: key %d listed as %d-%d, want %d-%d", v, want.ApiKey, got.MinVersion, got.MaxVersion, want.MinVersion, want.MaxVersion)
				}
			}
		}
		// The same connection still works, as a client retrying with v3 expects.
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(3)
		req.ClientSoftwareName, req.ClientSoftwareVersion = "raw", "1"
		if resp := rc.roundTrip(req).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
			t.Fatalf("ApiVersions v3 after the refusal: code %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
		}
		meta := kmsg.NewPtrMetadataRequest()
		meta.SetVersion(12)
		if resp := rc.roundTrip(meta).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("Metadata after the refusal: %d brokers", len(resp.Brokers))
		}
		canary.check(t)
	})

	t.Run("bad CRC is CORRUPT_MESSAGE and appends nothing", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		topic := "bad-crc"
		rc.mustCreateTopic(topic, nil)
		if sp := rc.produce(topic, rawBatch{pid: -1, values: testbatch.Values(2, 10, 1)}.bytes()); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
			t.Fatalf("good batch: code %d base %d", sp.ErrorCode, sp.BaseOffset)
		}
		bad := rawBatch{pid: -1, values: testbatch.Values(3, 10, 2)}.bytes()
		bad[len(bad)-2] ^= 0x40 // a value byte, covered by the CRC
		sp := rc.produce(topic, bad)
		if sp.ErrorCode != kerr.CorruptMessage.Code || sp.BaseOffset != -1 {
			t.Fatalf("corrupt batch: code %d base %d, want %d (CORRUPT_MESSAGE) base -1", sp.ErrorCode, sp.BaseOffset, kerr.CorruptMessage.Code)
		}
		if end := rc.endOffset(topic); end != 2 {
			t.Fatalf("log end offset %d after the corrupt batch, want 2", end)
		}
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "CORRUPT_MESSAGE")
		canary.check(t)
	})

	t.Run("records that do not match their header are refused", func(t *testing.T) {
		// Every batch here has a sound header and CRC; its records do not
		// say what the header says. Each would stop a consumer at it.
		rc := dialRaw(t, b.addr)
		topic := "bad-records"
		rc.mustCreateTopic(topic, nil)
		if sp := rc.produce(topic, rawBatch{pid: -1, values: testbatch.Values(2, 10, 1)}.bytes()); sp.ErrorCode != 0 {
			t.Fatalf("good batch: code %d", sp.ErrorCode)
		}
		plain := func(n int) []byte { return rawBatch{pid: -1, values: testbatch.Values(n, 10, 5)}.bytes()[61:] }
		var zstdOne bytes.Buffer
		zw, _ := zstd.NewWriter(&zstdOne)
		zw.Write(plain(1))
		zw.Close()
		garbage := make([]byte, 300)
		for i := range garbage {
			garbage[i] = byte(i*131 + 7)
		}
		for _, tc := range []struct {
			name  string
			batch []byte
			code  int16
		}{
			{"a zstd attribute over plain records", reframed(4, 3, plain(3)), kerr.CorruptMessage.Code},
			{"a gzip attribute over plain records", reframed(1, 3, plain(3)), kerr.CorruptMessage.Code},
			{"random bytes as records", reframed(0, 3, garbage), kerr.InvalidRecord.Code},
			{"a record length of 1 GiB", reframed(0, 1, append(wire.AppendVarint(nil, 1<<30), plain(1)[1:]...)), kerr.InvalidRecord.Code},
			{"a count of 3 with 1 record", reframed(0, 3, plain(1)), kerr.InvalidRecord.Code},
			{"a count of 2^31-1 with 1 record", reframed(0, 1<<31-1, plain(1)), kerr.InvalidRecord.Code},
			{"zstd: a count of 3 with 1 record", reframed(4, 3, zstdOne.Bytes()), kerr.InvalidRecord.Code},
		} {
			before := labelledMetric(t, b, "runnel_request_errors_total", `api="Produce",code="`+strconv.Itoa(int(tc.code))+`"`)
			if sp := rc.produce(topic, tc.batch); sp.ErrorCode != tc.code || sp.BaseOffset != -1 {
				t.Errorf("%s: code %d base %d, want %v base -1", tc.name, sp.ErrorCode, sp.BaseOffset, kerr.ErrorForCode(tc.code))
			}
			if got := labelledMetric(t, b, "runnel_request_errors_total", `api="Produce",code="`+strconv.Itoa(int(tc.code))+`"`); got != before+1 {
				t.Errorf("%s: runnel_request_errors_total for code %d = %v, want %v", tc.name, tc.code, got, before+1)
			}
		}
		if end := rc.endOffset(topic); end != 2 {
			t.Fatalf("log end offset %d after the refused batches, want 2", end)
		}
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "INVALID_RECORD", "invalid record in batch")
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "CORRUPT_MESSAGE", "decompress")
		// What franz-go writes with every codec is still taken, and reads back.
		want := 2
		for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(),
			kgo.Lz4Compression(), kgo.ZstdCompression()} {
			cl := newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(0))
			var recs []*kgo.Record
			for i := 0; i < 20; i++ {
				recs = append(recs, &kgo.Record{Key: []byte("k"), Value: bytes.Repeat([]byte{'v', byte(i)}, 200),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}})
			}
			if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), recs...).FirstErr(); err != nil {
				t.Fatalf("franz-go produce with %v: %v", codec, err)
			}
			want += len(recs)
		}
		if got := consumeN(t, b.addr, topic, want); string(got[want-1].Value[:2]) != "v\x13" {
			t.Fatalf("last record %q", got[want-1].Value[:2])
		}
		canary.check(t)
	})

	t.Run("illegal topic names are INVALID_TOPIC_EXCEPTION", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		names := []string{"bad/name", "..", ".", strings.Repeat("x", 250), "spaces are bad", "ünïcode"}
		for _, name := range names {
			if code := rc.createTopic(name, nil); code != kerr.InvalidTopicException.Code {
				t.Errorf("CreateTopics %q: code %d, want %d (INVALID_TOPIC_EXCEPTION)", name, code, kerr.InvalidTopicException.Code)
			}
		}
		// Refused creations are logged at Info: a client's mistake, not the broker's.
		waitLogs(t, b, len(names), "INFO", "create topic refused", "INVALID_TOPIC_EXCEPTION")
		// Metadata with auto-creation refuses the same names, and creates nothing.
		meta := kmsg.NewPtrMetadataRequest()
		meta.SetVersion(12)
		meta.AllowAutoTopicCreation = true
		for _, name := range names {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			meta.Topics = append(meta.Topics, rt)
		}
		resp := rc.roundTrip(meta).(*kmsg.MetadataResponse)
		if len(resp.Topics) != len(names) {
			t.Fatalf("Metadata answered %d topics, asked %d", len(resp.Topics), len(names))
		}
		for _, st := range resp.Topics {
			if st.ErrorCode != kerr.InvalidTopicException.Code || len(st.Partitions) != 0 {
				t.Errorf("Metadata %q: code %d with %d partitions, want %d (INVALID_TOPIC_EXCEPTION)", *st.Topic, st.ErrorCode, len(st.Partitions), kerr.InvalidTopicException.Code)
			}
		}
		all := kmsg.NewPtrMetadataRequest()
		all.SetVersion(12)
		for _, st := range rc.roundTrip(all).(*kmsg.MetadataResponse).Topics {
			for _, name := range names {
				if *st.Topic == name {
					t.Errorf("illegal topic %q exists", name)
				}
			}
		}
		// The longest legal name is accepted.
		if code := rc.createTopic(strings.Repeat("y", 249), nil); code != 0 {
			t.Errorf("CreateTopics with a 249-character name: code %d", code)
		}
		canary.check(t)
	})

	t.Run("batch over max.message.bytes is MESSAGE_TOO_LARGE", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		topic := "small-messages"
		rc.mustCreateTopic(topic, map[string]string{"max.message.bytes": "1024"})
		if sp := rc.produce(topic, rawBatch{pid: -1, values: testbatch.Values(4, 100, 1)}.bytes()); sp.ErrorCode != 0 {
			t.Fatalf("batch under the limit: code %d", sp.ErrorCode)
		}
		big := rawBatch{pid: -1, values: testbatch.Values(4, 1024, 2)}.bytes()
		if len(big) < 4096 {
			t.Fatalf("test batch is %d bytes, want at least 4 KiB", len(big))
		}
		if sp := rc.produce(topic, big); sp.ErrorCode != kerr.MessageTooLarge.Code {
			t.Fatalf("4 KiB batch: code %d, want %d (MESSAGE_TOO_LARGE)", sp.ErrorCode, kerr.MessageTooLarge.Code)
		}
		if end := rc.endOffset(topic); end != 4 {
			t.Fatalf("log end offset %d, want 4", end)
		}
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "MESSAGE_TOO_LARGE")
		canary.check(t)
	})

	t.Run("control and transactional batches from clients are INVALID_RECORD", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		topic := "no-control"
		rc.mustCreateTopic(topic, nil)
		for _, attrs := range []int16{0x20, 0x30, 0x10} { // control, control+transactional, transactional
			sp := rc.produce(topic, rawBatch{pid: -1, attrs: attrs, values: testbatch.Values(1, 8, 1)}.bytes())
			if sp.ErrorCode != kerr.InvalidRecord.Code {
				t.Errorf("attributes %#x: code %d, want %d (INVALID_RECORD)", attrs, sp.ErrorCode, kerr.InvalidRecord.Code)
			}
		}
		if end := rc.endOffset(topic); end != 0 {
			t.Fatalf("log end offset %d, want 0", end)
		}
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "INVALID_RECORD")
		canary.check(t)
	})

	t.Run("replication requests a single broker refuses", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		topic := "replicated-input"
		rc.mustCreateTopic(topic, nil)
		if sp := rc.produce(topic, rawBatch{pid: -1, values: testbatch.Values(3, 10, 1)}.bytes()); sp.ErrorCode != 0 {
			t.Fatalf("produce: code %d", sp.ErrorCode)
		}

		// A replication factor above the live brokers, and a
		// min.insync.replicas above the replication factor.
		create := func(rf int16, configs map[string]string) int16 {
			req := kmsg.NewPtrCreateTopicsRequest()
			req.SetVersion(7)
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "too-replicated", 1, rf
			for k, v := range configs {
				c := kmsg.NewCreateTopicsRequestTopicConfig()
				c.Name, c.Value = k, kmsg.StringPtr(v)
				rt.Configs = append(rt.Configs, c)
			}
			req.Topics = append(req.Topics, rt)
			return rc.roundTrip(req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode
		}
		if code := create(3, nil); code != kerr.InvalidReplicationFactor.Code {
			t.Errorf("replication factor 3 on one broker: code %d, want INVALID_REPLICATION_FACTOR", code)
		}
		if code := create(1, map[string]string{"min.insync.replicas": "2"}); code != kerr.InvalidConfig.Code {
			t.Errorf("min.insync.replicas 2 with one replica: code %d, want INVALID_CONFIG", code)
		}
		waitLog(t, b, "INFO", "create topic refused", "too-replicated", "min.insync.replicas=2")

		// A fetch naming a leader epoch this broker does not have, and a
		// follower's fetch from a broker that is no replica.
		fetch := func(replica, epoch int32) int16 {
			req := kmsg.NewPtrFetchRequest()
			req.SetVersion(12)
			req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = replica, 10, 1<<20, -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.CurrentLeaderEpoch, rp.PartitionMaxBytes, rp.LastFetchedEpoch = epoch, 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			return rc.roundTrip(req).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode
		}
		if code := fetch(-1, 1000); code != kerr.UnknownLeaderEpoch.Code {
			t.Errorf("fetch at leader epoch 1000: code %d, want UNKNOWN_LEADER_EPOCH", code)
		}
		if code := fetch(7, -1); code != kerr.NotLeaderForPartition.Code {
			t.Errorf("replica fetch from broker 7: code %d, want NOT_LEADER_OR_FOLLOWER", code)
		}
		waitLog(t, b, "WARN", "replica fetch refused", "broker 7")
		if end := rc.endOffset(topic); end != 3 {
			t.Fatalf("log end offset %d, want 3", end)
		}
		canary.check(t)
	})

	t.Run("idempotent producer checks", func(t *testing.T) {
		rc := dialRaw(t, b.addr)
		topic := "idempotence"
		rc.mustCreateTopic(topic, nil)
		pid, epoch := rc.initProducerID(-1, -1)
		val := func(vs ...string) [][]byte {
			out := make([][]byte, len(vs))
			for i, v := range vs {
				out[i] = []byte(v)
			}
			return out
		}
		type step struct {
			what  string
			batch rawBatch
			code  int16
			base  int64
			end   int64 // log end offset after the step
		}
		run := func(steps []step) {
			t.Helper()
			for _, st := range steps {
				sp := rc.produce(topic, st.batch.bytes())
				if sp.ErrorCode != st.code || sp.BaseOffset != st.base {
					t.Fatalf("%s: code %d base %d, want code %d base %d", st.what, sp.ErrorCode, sp.BaseOffset, st.code, st.base)
				}
				if end := rc.endOffset(topic); end != st.end {
					t.Fatalf("%s: log end offset %d, want %d", st.what, end, st.end)
				}
			}
		}
		first := rawBatch{pid, epoch, 0, 0, val("a0", "a1", "a2")}
		second := rawBatch{pid, epoch, 3, 0, val("b3", "b4")}
		run([]step{
			{"first batch", first, 0, 0, 3},
			{"duplicate of the first", first, 0, 0, 3},
			{"second batch", second, 0, 3, 5},
			{"first again, still remembered", first, 0, 0, 5},
			{"second again", second, 0, 3, 5},
			{"sequence gap", rawBatch{pid, epoch, 10, 0, val("gap")}, kerr.OutOfOrderSequenceNumber.Code, -1, 5},
			{"sequence going back", rawBatch{pid, epoch, 1, 0, val("back")}, kerr.OutOfOrderSequenceNumber.Code, -1, 5},
			{"unknown producer not at sequence 0", rawBatch{pid + 1_000_000, 0, 4, 0, val("new")}, kerr.OutOfOrderSequenceNumber.Code, -1, 5},
		})
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "OUT_OF_ORDER_SEQUENCE_NUMBER")

		// KIP-360 epoch bump: the same id, the next epoch, sequences restart.
		pid2, epoch2 := rc.initProducerID(pid, epoch)
		if pid2 != pid || epoch2 != epoch+1 {
			t.Fatalf("epoch bump gave id %d epoch %d, want %d %d", pid2, epoch2, pid, epoch+1)
		}
		run([]step{
			{"new epoch at sequence 0", rawBatch{pid, epoch2, 0, 0, val("c5")}, 0, 5, 6},
			{"old epoch after the new one", rawBatch{pid, epoch, 5, 0, val("zombie")}, kerr.InvalidProducerEpoch.Code, -1, 6},
			{"old epoch's duplicate", first, kerr.InvalidProducerEpoch.Code, -1, 6},
		})
		waitLog(t, b, "WARN", "produce refused", "remote="+rc.local(), "INVALID_PRODUCER_EPOCH")

		want := []string{"a0", "a1", "a2", "b3", "b4", "c5"}
		recs := consumeN(t, b.addr, topic, len(want))
		for i, r := range recs {
			if r.Offset != int64(i) || string(r.Value) != want[i] {
				t.Fatalf("record %d: offset %d value %q, want %q", i, r.Offset, r.Value, want[i])
			}
		}
		canary.check(t)
	})
}

// TestIdempotentRetryAfterLostResponse cuts the connection instead of
// forwarding the first Produce response, so franz-go cannot know whether
// the batch was written and retries it with the same sequence. The broker
// must answer the retry as a duplicate: every record is stored exactly once,
// in order.
func TestIdempotentRetryAfterLostResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &dropProxy{ln: ln, dropKey: 0} // Produce
	b := startBroker(t, "", "--advertise", ln.Addr().String())
	proxy.target = b.addr
	proxy.wg.Add(1)
	go proxy.serve()
	t.Cleanup(proxy.close)

	const topic, n = "retry-after-lost-response", 300
	cl := newClient(t, ln.Addr().String(), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(50),
		kgo.MetadataMinAge(250*time.Millisecond)) // the retry waits for a metadata refresh
	ctx := ctxTimeout(t, 90*time.Second)
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		cl.Produce(ctx, kgo.StringRecord(strconv.Itoa(i)), func(r *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				t.Errorf("record %s: %v", r.Value, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !proxy.didDrop() {
		t.Fatal("the proxy never saw a Produce response to drop")
	}
	if failed.Load() > 0 {
		t.FailNow()
	}
	recs := consumeN(t, ln.Addr().String(), topic, n)
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if end := dialRaw(t, b.addr).endOffset(topic); end != n {
		t.Fatalf("log end offset %d, want %d: the retried batch was stored twice", end, n)
	}
}

// dropProxy forwards Kafka connections to target, except that it closes
// the client's connection (and its own to the broker) instead of
// forwarding the first response to a request with key dropKey.
type dropProxy struct {
	ln      net.Listener
	target  string
	dropKey int16

	dropped atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func (p *dropProxy) didDrop() bool { return p.dropped.Load() }

func (p *dropProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
	}
}

func (p *dropProxy) pipe(client, broker net.Conn) {
	var mu sync.Mutex
	keys := map[int32]int16{} // correlation id -> API key of requests forwarded
	closeBoth := func() { client.Close(); broker.Close() }
	go func() {
		defer p.wg.Done()
		defer closeBoth()
		for {
			f, err := readFrame(client)
			if err != nil || len(f) < 12 {
				return
			}
			mu.Lock()
			keys[int32(wire.BigEndian.Uint32(f[8:]))] = int16(wire.BigEndian.Uint16(f[4:]))
			mu.Unlock()
			if _, err := broker.Write(f); err != nil {
				return
			}
		}
	}()
	defer p.wg.Done()
	defer closeBoth()
	for {
		f, err := readFrame(broker)
		if err != nil || len(f) < 8 {
			return
		}
		corr := int32(wire.BigEndian.Uint32(f[4:]))
		mu.Lock()
		key, ok := keys[corr]
		delete(keys, corr)
		mu.Unlock()
		if ok && key == p.dropKey && p.dropped.CompareAndSwap(false, true) {
			return // the response is lost with the connection
		}
		if _, err := client.Write(f); err != nil {
			return
		}
	}
}

func (p *dropProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// readFrame reads one size-prefixed frame, prefix included.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := wire.BigEndian.Uint32(size[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	f := make([]byte, 4+n)
	copy(f, size[:])
	_, err := io.ReadFull(r, f[4:])
	return f, err
}

// rawConn is a hand-driven Kafka connection.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (rc *rawConn) local() string { return rc.c.LocalAddr().String() }

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := rc.c.Write(b); err != nil && !isClosedErr(err) {
		rc.t.Fatalf("write: %v", err)
	}
}

// send frames req with a v1 or v2 request header and returns its
// correlation id.
func (rc *rawConn) send(req kmsg.Request) int32 {
	rc.t.Helper()
	rc.corr++
	b := make([]byte, 4, 256)
	b = wire.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = wire.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = wire.BigEndian.AppendUint32(b, uint32(rc.corr))
	b = wire.BigEndian.AppendUint16(b, 3)
	b = append(b, "raw"...)
	if req.IsFlexible() {
		b = append(b, 0) // no header tags
	}
	b = req.AppendTo(b)
	wire.BigEndian.PutUint32(b, uint32(len(b)-4))
	rc.write(b)
	return rc.corr
}

// recvFrame reads one response and returns its body.
func (rc *rawConn) recvFrame(corr int32, headerTags bool) []byte {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(ioTimeout))
	f, err := readFrame(rc.c)
	if err != nil {
		rc.t.Fatalf("reading response %d: %v", corr, err)
	}
	if got := int32(wire.BigEndian.Uint32(f[4:])); got != corr {
		rc.t.Fatalf("response correlation id %d, want %d", got, corr)
	}
	body := f[8:]
	if headerTags {
		if len(body) == 0 || body[0] != 0 {
			rc.t.Fatalf("response header tags: % x", body[:min(len(body), 8)])
		}
		body = body[1:]
	}
	return body
}

func (rc *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	rc.t.Helper()
	return rc.recv(req, rc.send(req))
}

// recv reads and decodes the response to req sent with correlation id corr,
// so a test can pipeline several requests before reading.
func (rc *rawConn) recv(req kmsg.Request, corr int32) kmsg.Response {
	rc.t.Helper()
	body := rc.recvFrame(corr, req.IsFlexible() && req.Key() != 18)
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		rc.t.Fatalf("decoding %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// expectClosed waits for the broker to close the connection.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 512)
	for {
		n, err := rc.c.Read(buf)
		if n > 0 {
			rc.t.Fatalf("broker answered % x instead of closing", buf[:n])
		}
		if err == nil {
			continue
		}
		if isClosedErr(err) {
			return
		}
		rc.t.Fatalf("connection not closed by the broker: %v", err)
	}
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (rc *rawConn) createTopic(name string, configs map[string]string) int16 {
	rc.t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp := rc.roundTrip(req).(*kmsg.CreateTopicsResponse)
	if len(resp.Topics) != 1 {
		rc.t.Fatalf("CreateTopics answered %d topics", len(resp.Topics))
	}
	return resp.Topics[0].ErrorCode
}

func (rc *rawConn) mustCreateTopic(name string, configs map[string]string) {
	rc.t.Helper()
	if code := rc.createTopic(name, configs); code != 0 {
		rc.t.Fatalf("CreateTopics %s: %v", name, kerr.ErrorForCode(code))
	}
}

// produce sends one batch to partition 0 with acks=all (Produce v9).
func (rc *rawConn) produce(topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	rc.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rc.roundTrip(req).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		rc.t.Fatalf("Produce answered %+v", resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

// endOffset returns partition 0's latest offset (ListOffsets -1).
func (rc *rawConn) endOffset(topic string) int64 {
	rc.t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(7)
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rc.roundTrip(req).(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		rc.t.Fatalf("ListOffsets answered %+v", resp.Topics)
	}
	sp := resp.Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		rc.t.Fatalf("ListOffsets %s: %v", topic, kerr.ErrorForCode(sp.ErrorCode))
	}
	return sp.Offset
}

// initProducerID asks for a producer id, or (with id and epoch >= 0) for an
// epoch bump.
func (rc *rawConn) initProducerID(id int64, epoch int16) (int64, int16) {
	rc.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(4)
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = id, epoch
	resp := rc.roundTrip(req).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		rc.t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// rawBatch describes a RecordBatch v2 with explicit producer fields
// (testbatch.Make treats producer id 0 as "none", which is a real id here).
type rawBatch struct {
	pid    int64
	epoch  int16
	seq    int32
	attrs  int16
	values [][]byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// reframed returns a batch of count records (lastOffsetDelta count-1)
// with records as its records section and codec in its attributes, under a
// valid CRC: a sound header over whatever records says.
func reframed(codec int16, count int32, records []byte) []byte {
	b := rawBatch{pid: -1, attrs: codec}.bytes()[:61]
	b = append(b, records...)
	wire.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	wire.BigEndian.PutUint32(b[23:], uint32(count-1))
	wire.BigEndian.PutUint32(b[57:], uint32(count))
	wire.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

func (rb rawBatch) bytes() []byte {
	b := testbatch.Make(testbatch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, Attributes: rb.attrs, Values: rb.values})
	wire.BigEndian.PutUint64(b[43:], uint64(rb.pid))
	wire.BigEndian.PutUint16(b[51:], uint16(rb.epoch))
	wire.BigEndian.PutUint32(b[53:], uint32(rb.seq))
	wire.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// labelledMetric returns a labelled metric from /metrics, 0 if absent (a
// counter vector shows a label set only once it has been used).
func labelledMetric(t *testing.T, b *broker, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitLog waits for a log line at level that contains every part. The
// broker's stderr is read by another goroutine, so the line may lag.
func waitLog(t *testing.T, b *broker, level string, parts ...string) {
	t.Helper()
	waitLogs(t, b, 1, level, parts...)
}

// waitLogs waits for n such lines.
func waitLogs(t *testing.T, b *broker, n int, level string, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		found := 0
		for _, line := range strings.Split(b.logs(), "\n") {
			if !strings.Contains(line, "level="+level+" ") {
				continue
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				found++
			}
		}
		if found >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %s log lines with %q in:\n%s", found, n, level, parts, b.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newClient returns a franz-go client owned by t.
func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeN reads partition 0 of topic from the start until n records, and
// checks nothing more is there.
func consumeN(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	ctx := ctxTimeout(t, 60*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

// canary is a client that was connected before any bad input: after each
// case it produces through its existing connections, and a new client
// consumes what it wrote.
type canary struct {
	b     *broker
	cl    *kgo.Client
	count int
}

const canaryTopic = "canary"

func newCanary(t *testing.T, b *broker) *canary {
	c := &canary{b: b, cl: newClient(t, b.addr, kgo.DefaultProduceTopic(canaryTopic), kgo.AllowAutoTopicCreation())}
	c.check(t)
	return c
}

func (c *canary) check(t *testing.T) {
	t.Helper()
	c.count++
	want := fmt.Sprintf("canary-%d", c.count)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := c.cl.ProduceSync(ctx, kgo.StringRecord(want)).First()
	if err != nil {
		t.Fatalf("broker stopped serving: produce: %v", err)
	}
	cons := newClient(t, c.b.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{canaryTopic: {0: kgo.NewOffset().At(r.Offset)}}))
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("broker stopped serving: consume: %v", err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("broker stopped serving: fetch: %v", err) })
		if recs := fs.Records(); len(recs) > 0 {
			if string(recs[0].Value) != want || recs[0].Offset != r.Offset {
				t.Fatalf("canary read %q at %d, want %q at %d", recs[0].Value, recs[0].Offset, want, r.Offset)
			}
			return
		}
	}
}

// waitGroupCoordinators waits until the broker coordinates groups: a
// FindCoordinator creates __consumer_offsets, then every partition of it
// must load. DescribeGroups of probe groups spread over the partitions
// answers NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS until then.
// Tests that send group requests without looking up the coordinator first
// (as clients do) call it.
func (rc *rawConn) waitGroupCoordinators(t *testing.T) {
	t.Helper()
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "probe"
	dg := kmsg.NewPtrDescribeGroupsRequest()
	for i := 0; i < 500; i++ {
		dg.Groups = append(dg.Groups, fmt.Sprintf("probe-%d", i))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := rc.roundTrip(fc).(*kmsg.FindCoordinatorResponse).ErrorCode
		if code == 0 {
			for _, g := range rc.roundTrip(dg).(*kmsg.DescribeGroupsResponse).Groups {
				if g.ErrorCode != 0 {
					code = g.ErrorCode
					break
				}
			}
		}
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group coordinators are not ready: error %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
