package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/protocol"
)

// fuzzSeedRequests returns valid requests, at versions runnel serves, to
// seed the fuzzers with.
func fuzzSeedRequests() []kmsg.Request {
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	produce.Acks, produce.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1, ProducerID: -1, Values: testbatch.Values(2, 8, 1)})
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)

	produce3 := kmsg.NewPtrProduceRequest()
	produce3.SetVersion(3)
	produce3.Acks = 1
	produce3.Topics = produce.Topics

	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(12)
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes, fetch.SessionEpoch = 500, 1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes = 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	fetch16 := kmsg.NewPtrFetchRequest()
	fetch16.SetVersion(16)
	fetch16.Topics = []kmsg.FetchRequestTopic{{TopicID: [16]byte{1, 2, 3}, Partitions: ft.Partitions}}

	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("t")
	meta.Topics = append(meta.Topics, mt)

	meta0 := kmsg.NewPtrMetadataRequest()
	meta0.SetVersion(0)
	meta0.Topics = meta.Topics

	versions := kmsg.NewPtrApiVersionsRequest()
	versions.SetVersion(3)
	versions.ClientSoftwareName, versions.ClientSoftwareVersion = "fuzz", "1"

	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(7)
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "t", 3, 1
	cc := kmsg.NewCreateTopicsRequestTopicConfig()
	cc.Name, cc.Value = "retention.ms", kmsg.StringPtr("1000")
	ct.Configs = append(ct.Configs, cc)
	create.Topics = append(create.Topics, ct)

	list := kmsg.NewPtrListOffsetsRequest()
	list.SetVersion(7)
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "t"
	lt.Partitions = append(lt.Partitions, kmsg.ListOffsetsRequestTopicPartition{Timestamp: -1})
	list.Topics = append(list.Topics, lt)

	list0 := kmsg.NewPtrListOffsetsRequest()
	list0.SetVersion(0)
	list0.ReplicaID = -1
	lt0 := kmsg.NewListOffsetsRequestTopic()
	lt0.Topic = "t"
	lt0.Partitions = append(lt0.Partitions, kmsg.ListOffsetsRequestTopicPartition{Timestamp: -2, MaxNumOffsets: 1})
	list0.Topics = append(list0.Topics, lt0)

	txn := kmsg.NewPtrFindCoordinatorRequest()
	txn.SetVersion(3)
	txn.CoordinatorType, txn.CoordinatorKey = 1, "tx"

	pid := kmsg.NewPtrInitProducerIDRequest()
	pid.SetVersion(4)
	pid.ProducerID, pid.ProducerEpoch = -1, -1

	describe := kmsg.NewPtrDescribeConfigsRequest()
	describe.SetVersion(4)
	describe.Resources = append(describe.Resources, kmsg.DescribeConfigsRequestResource{
		ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t", ConfigNames: []string{"retention.ms"}})

	quotas := kmsg.NewPtrDescribeClientQuotasRequest()
	quotas.SetVersion(1)
	quotas.Components = append(quotas.Components, kmsg.DescribeClientQuotasRequestComponent{EntityType: "user", MatchType: 2})

	alterQuotas := kmsg.NewPtrAlterClientQuotasRequest()
	alterQuotas.SetVersion(0)
	alterQuotas.Entries = append(alterQuotas.Entries, kmsg.AlterClientQuotasRequestEntry{
		Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "client-id", Name: kmsg.StringPtr("app")}},
		Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1024}}})

	return []kmsg.Request{produce, produce3, fetch, fetch16, meta, meta0, versions, create, list, list0, txn, pid, describe,
		quotas, alterQuotas}
}

// fuzzFrame encodes req as a request frame without its size: the header
// (v1, or v2 for flexible versions) and the body.
func fuzzFrame(req kmsg.Request, clientID string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, 42)
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// FuzzParseHeader feeds arbitrary frames to the request header decoder. It
// must never panic, and when it accepts a frame the body it returns is the
// frame's tail.
func FuzzParseHeader(f *testing.F) {
	for _, req := range fuzzSeedRequests() {
		f.Add(fuzzFrame(req, "client"))
		f.Add(fuzzFrame(req, ""))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0x02, 0x01, 0x00}) // null client id, one empty header tag
	f.Add([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0})                   // unknown key 9999
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, body, err := parseHeader(frame)
		if err != nil {
			return
		}
		if len(body) > len(frame)-10 {
			t.Fatalf("body of %d bytes from a %d-byte frame", len(body), len(frame))
		}
		if !bytes.Equal(frame[len(frame)-len(body):], body) {
			t.Fatalf("body %x is not the tail of frame %x", body, frame)
		}
		if kmsg.RequestForKey(h.Key) == nil || h.Version < 0 {
			t.Fatalf("accepted key %d version %d", h.Key, h.Version)
		}
		if got := int16(binary.BigEndian.Uint16(frame)); got != h.Key {
			t.Fatalf("key %d, frame says %d", h.Key, got)
		}
	})
}

// FuzzDispatchDecode decodes arbitrary bytes as the body of every request
// runnel serves, at every version it serves, as dispatch does. Decoding
// must never panic (a panic here would take the broker down with it) and
// must finish in time proportional to the body.
func FuzzDispatchDecode(f *testing.F) {
	keys := make([]int16, 0, len(supported))
	for k := range supported {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, req := range fuzzSeedRequests() {
		f.Add(req.Key(), req.GetVersion(), req.AppendTo(nil))
	}
	f.Add(int16(0), int16(11), []byte{})
	f.Add(int16(60), int16(1), hugeTagCountBody)
	f.Fuzz(func(t *testing.T, key, version int16, body []byte) {
		// Fold any key and version onto a supported pair, so that no
		// input is wasted on what dispatch refuses before decoding.
		vr, ok := supported[key]
		if !ok {
			key = keys[int(uint16(key))%len(keys)]
			vr = supported[key]
		}
		if version < vr.min || version > vr.max {
			version = vr.min + int16(int(uint16(version))%int(vr.max-vr.min+1))
		}
		req, err := decodeRequest(key, version, body)
		if err != nil {
			if !errors.Is(err, ErrMalformedBody) {
				t.Fatalf("decode error %v does not wrap ErrMalformedBody", err)
			}
			return
		}
		// What decoded must encode again without panicking (handlers
		// echo decoded fields into responses).
		req.AppendTo(nil)
	})
}

// hugeTagCountBody is a DescribeCluster v1 body whose tagged-field count,
// 952,391,828, exceeds the bytes that follow it (none). kmsg's decoder
// alone loops once per announced tag after its input runs out: about 15 s
// of CPU for these 7 bytes, up to 2^32 iterations for a 5-byte count.
var hugeTagCountBody = []byte("\xc7B\x94\xb1\x91\xc6\x03")

// TestDecodeHugeTagCount: the schema walk refuses a forged tagged-field
// count before the decoder sees it.
func TestDecodeHugeTagCount(t *testing.T) {
	_, err := decodeRequest(60, 1, hugeTagCountBody)
	if !errors.Is(err, protocol.ErrMalformed) {
		t.Fatalf("err = %v, want the schema walk's ErrMalformed", err)
	}
}

// TestEverySupportedVersionHasASchema: dispatch walks every body it decodes.
func TestEverySupportedVersionHasASchema(t *testing.T) {
	for key, vr := range supported {
		min, max, ok := protocol.Versions(key)
		if !ok || min > vr.min || max < vr.max {
			t.Errorf("%s: served %d-%d, schema covers %d-%d (known %v)", apiName(key), vr.min, vr.max, min, max, ok)
		}
	}
}
