package test

import (
	wire "encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/server"
)

// errorCodes collects every ErrorCode field in a response.
func errorCodes(resp kmsg.Response) []int16 {
	var out []int16
	switch v := resp.(type) {
	case *kmsg.ProduceResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.WriteTxnMarkersResponse:
		for _, m := range v.Markers {
			for _, t := range m.Topics {
				for _, p := range t.Partitions {
					out = append(out, p.ErrorCode)
				}
			}
		}
	case *kmsg.FetchResponse:
		out = append(out, v.ErrorCode)
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.ListOffsetsResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.MetadataResponse:
		for _, t := range v.Topics {
			out = append(out, t.ErrorCode)
		}
	case *kmsg.ApiVersionsResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.CreateTopicsResponse:
		for _, t := range v.Topics {
			out = append(out, t.ErrorCode)
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range v.Topics {
			out = append(out, t.ErrorCode)
		}
	case *kmsg.DeleteRecordsResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.InitProducerIDResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.OffsetForLeaderEpochResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.DescribeConfigsResponse:
		for _, r := range v.Resources {
			out = append(out, r.ErrorCode)
		}
	case *kmsg.AlterConfigsResponse:
		for _, r := range v.Resources {
			out = append(out, r.ErrorCode)
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for _, r := range v.Resources {
			out = append(out, r.ErrorCode)
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range v.Topics {
			out = append(out, t.ErrorCode)
		}
	case *kmsg.DescribeClusterResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.SASLHandshakeResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.SASLAuthenticateResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.DescribeUserSCRAMCredentialsResponse:
		out = append(out, v.ErrorCode)
		for _, r := range v.Results {
			out = append(out, r.ErrorCode)
		}
	case *kmsg.AlterUserSCRAMCredentialsResponse:
		for _, r := range v.Results {
			out = append(out, r.ErrorCode)
		}
	case *kmsg.DescribeACLsResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.DescribeClientQuotasResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.AlterClientQuotasResponse:
		for _, e := range v.Entries {
			out = append(out, e.ErrorCode)
		}
	case *kmsg.CreateACLsResponse:
		for _, r := range v.Results {
			out = append(out, r.ErrorCode)
		}
	case *kmsg.DeleteACLsResponse:
		for _, r := range v.Results {
			out = append(out, r.ErrorCode)
			if len(r.MatchingACLs) != 1 {
				out = append(out, -1)
			}
		}
	case *kmsg.DescribeQuorumResponse:
		out = append(out, v.ErrorCode)
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.FindCoordinatorResponse:
		out = append(out, v.ErrorCode)
		for _, c := range v.Coordinators {
			out = append(out, c.ErrorCode)
		}
	case *kmsg.JoinGroupResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.SyncGroupResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.HeartbeatResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		out = append(out, v.ErrorCode)
		for _, m := range v.Members {
			out = append(out, m.ErrorCode)
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.OffsetFetchResponse:
		out = append(out, v.ErrorCode)
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
		for _, g := range v.Groups {
			out = append(out, g.ErrorCode)
			for _, t := range g.Topics {
				for _, p := range t.Partitions {
					out = append(out, p.ErrorCode)
				}
			}
		}
	case *kmsg.ListGroupsResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.DescribeGroupsResponse:
		for _, g := range v.Groups {
			out = append(out, g.ErrorCode)
		}
	case *kmsg.DeleteGroupsResponse:
		for _, g := range v.Groups {
			out = append(out, g.ErrorCode)
		}
	case *kmsg.OffsetDeleteResponse:
		out = append(out, v.ErrorCode)
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.TxnOffsetCommitResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.ElectLeadersResponse:
		out = append(out, v.ErrorCode)
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.DescribeLogDirsResponse:
		out = append(out, v.ErrorCode)
		for _, d := range v.Dirs {
			out = append(out, d.ErrorCode)
		}
	case *kmsg.DescribeProducersResponse:
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
	case *kmsg.AddPartitionsToTxnResponse:
		out = append(out, v.ErrorCode)
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				out = append(out, p.ErrorCode)
			}
		}
		for _, tx := range v.Transactions {
			for _, t := range tx.Topics {
				for _, p := range t.Partitions {
					out = append(out, p.ErrorCode)
				}
			}
		}
	case *kmsg.AddOffsetsToTxnResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.EndTxnResponse:
		out = append(out, v.ErrorCode)
	case *kmsg.DescribeTransactionsResponse:
		for _, s := range v.TransactionStates {
			out = append(out, s.ErrorCode)
		}
	case *kmsg.ListTransactionsResponse:
		out = append(out, v.ErrorCode)
	}
	return out
}

// groupSweep builds the group requests of TestEveryAPIVersion. Each version
// works on a group of its own; requests that need a member first join (and
// sync) over rc with the newest versions.
type groupSweep struct {
	t     *testing.T
	rc    *rawConn
	topic string
}

// join makes a member of a new one-member group and returns its member id
// and generation; with sync, the member has also synced.
func (g groupSweep) join(groupID string, sync bool) (string, int32) {
	g.t.Helper()
	j := g.joinRequest(groupID, "")
	j.SetVersion(9)
	resp := g.rc.roundTrip(j).(*kmsg.JoinGroupResponse)
	if resp.ErrorCode == 79 { // MEMBER_ID_REQUIRED
		j = g.joinRequest(groupID, resp.MemberID)
		j.SetVersion(9)
		resp = g.rc.roundTrip(j).(*kmsg.JoinGroupResponse)
	}
	if resp.ErrorCode != 0 {
		g.t.Fatalf("join %s: error %d", groupID, resp.ErrorCode)
	}
	if sync {
		s := g.syncRequest(groupID, resp.MemberID, resp.Generation)
		s.SetVersion(5)
		if code := g.rc.roundTrip(s).(*kmsg.SyncGroupResponse).ErrorCode; code != 0 {
			g.t.Fatalf("sync %s: error %d", groupID, code)
		}
	}
	return resp.MemberID, resp.Generation
}

func (g groupSweep) joinRequest(groupID, memberID string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Group, r.MemberID, r.ProtocolType = groupID, memberID, "consumer"
	r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 30000, 30000
	meta := kmsg.ConsumerMemberMetadata{Topics: []string{g.topic}}
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	return r
}

func (g groupSweep) syncRequest(groupID, memberID string, generation int32) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Group, r.MemberID, r.Generation = groupID, memberID, generation
	r.ProtocolType, r.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	assignment := kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: g.topic, Partitions: []int32{0}}}}
	r.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: memberID, MemberAssignment: assignment.AppendTo(nil)}}
	return r
}

// commit commits offset 1 of the topic's partition 0 outside membership.
func (g groupSweep) commit(groupID string) {
	g.t.Helper()
	r := g.commitRequest(groupID)
	r.SetVersion(9)
	for _, code := range errorCodes(g.rc.roundTrip(r)) {
		if code != 0 {
			g.t.Fatalf("commit %s: error %d", groupID, code)
		}
	}
}

func (g groupSweep) commitRequest(groupID string) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Group, r.Generation = groupID, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = g.topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Offset, rp.LeaderEpoch, rp.Metadata = 1, -1, kmsg.StringPtr("sweep")
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

func (g groupSweep) builders() map[int16]func(v int16) kmsg.Request {
	name := func(api string, v int16) string { return fmt.Sprintf("sweep-%s-v%d", api, v) }
	return map[int16]func(v int16) kmsg.Request{
		8: func(v int16) kmsg.Request { return g.commitRequest(name("commit", v)) },
		9: func(v int16) kmsg.Request {
			gid := name("fetch", v)
			g.commit(gid)
			r := kmsg.NewPtrOffsetFetchRequest()
			topics := []kmsg.OffsetFetchRequestTopic{{Topic: g.topic, Partitions: []int32{0}}}
			r.Group, r.Topics = gid, topics
			r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: gid, MemberEpoch: -1,
				Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: g.topic, Partitions: []int32{0}}}}}
			return r
		},
		10: func(v int16) kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.CoordinatorKey, r.CoordinatorKeys = "g", []string{"g", "h"}
			return r
		},
		11: func(v int16) kmsg.Request {
			gid := name("join", v)
			memberID := ""
			if v >= 4 {
				pre := g.joinRequest(gid, "")
				pre.SetVersion(v)
				resp := g.rc.roundTrip(pre).(*kmsg.JoinGroupResponse)
				if resp.ErrorCode != 79 {
					g.t.Fatalf("JoinGroup v%d without a member id: error %d, want 79 (MEMBER_ID_REQUIRED)", v, resp.ErrorCode)
				}
				memberID = resp.MemberID
			}
			return g.joinRequest(gid, memberID)
		},
		12: func(v int16) kmsg.Request {
			gid := name("heartbeat", v)
			member, gen := g.join(gid, true)
			r := kmsg.NewPtrHeartbeatRequest()
			r.Group, r.MemberID, r.Generation = gid, member, gen
			return r
		},
		13: func(v int16) kmsg.Request {
			gid := name("leave", v)
			member, _ := g.join(gid, true)
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Group, r.MemberID = gid, member
			r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}}
			return r
		},
		14: func(v int16) kmsg.Request {
			gid := name("sync", v)
			member, gen := g.join(gid, false)
			return g.syncRequest(gid, member, gen)
		},
		15: func(v int16) kmsg.Request {
			gid := name("describe", v)
			g.join(gid, true)
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Groups, r.IncludeAuthorizedOperations = []string{gid, "no-such-group"}, true
			return r
		},
		16: func(v int16) kmsg.Request {
			r := kmsg.NewPtrListGroupsRequest()
			r.StatesFilter = []string{"Stable", "Empty"}
			return r
		},
		42: func(v int16) kmsg.Request {
			gid := name("delete", v)
			g.commit(gid)
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Groups = []string{gid}
			return r
		},
		47: func(v int16) kmsg.Request {
			gid := name("offsetdelete", v)
			g.commit(gid)
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Group = gid
			r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: g.topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			return r
		},
	}
}

// TestEveryAPIVersion sends each supported API at each supported version —
// flexible and not — and checks the answer decodes at that version and
// reports success, with the authorizer on and the clients super users.
func TestEveryAPIVersion(t *testing.T) {
	saslAddr := freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = []string{"--group-initial-rebalance-delay", "0s", "--listeners", "PLAINTEXT://" + b.addr + ",SASL_PLAINTEXT://" + saslAddr,
		"--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-256", "--scram-user", "sweep:SCRAM-SHA-256:sweep-pw",
		"--authorizer", "--super-users", "User:ANONYMOUS;User:sweep"}
	b.start()
	t.Cleanup(func() { b.kill() })
	rc := dialRaw(t, b.addr)
	topic := "sweep"
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.SetVersion(4)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	ct.Topics = append(ct.Topics, rt)
	ct.TimeoutMillis = 10000
	if codes := errorCodes(rc.roundTrip(ct)); codes[0] != 0 {
		t.Fatalf("create: %v", codes)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	topicID := rc.roundTrip(md).(*kmsg.MetadataResponse).Topics[0].TopicID

	pid := int64(-1)
	partitions := int32(1)
	build := map[int16]func(v int16) kmsg.Request{
		0: func(v int16) kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Acks, r.TimeoutMillis = -1, 10000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = testbatch.Make(testbatch.Spec{Timestamp: time.Now().UnixMilli(), Values: testbatch.Values(3, 20, byte(v))})
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		1: func(v int16) kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.SessionEpoch = 100, 1, 1<<20, -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = topic, topicID
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 1 << 20
			rp.FetchOffset = 0
			rp.LogStartOffset = -1
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		2: func(v int16) kmsg.Request {
			r := kmsg.NewPtrListOffsetsRequest()
			r.ReplicaID = -1
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		3: func(v int16) kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			r.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
			return r
		},
		18: func(v int16) kmsg.Request {
			r := kmsg.NewPtrApiVersionsRequest()
			r.ClientSoftwareName, r.ClientSoftwareVersion = "tests", "1.0"
			return r
		},
		19: func(v int16) kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.TimeoutMillis = 10000
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = fmt.Sprintf("sweep-v%d", v), 1, 1
			r.Topics = append(r.Topics, rt)
			return r
		},
		20: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.TimeoutMillis = 10000
			name := fmt.Sprintf("sweep-v%d", v)
			r.TopicNames = []string{name}
			r.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: &name}}
			return r
		},
		21: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDeleteRecordsRequest()
			r.TimeoutMillis = 10000
			rt := kmsg.NewDeleteRecordsRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Offset = 0
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		22: func(v int16) kmsg.Request {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.ProducerID, r.ProducerEpoch = -1, -1
			return r
		},
		23: func(v int16) kmsg.Request {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			r.ReplicaID = -1
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rp.CurrentLeaderEpoch, rp.LeaderEpoch = -1, 0
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		27: func(v int16) kmsg.Request {
			// A commit marker for a producer the partition has not seen,
			// as a coordinator's retry after a cleaned log may send.
			r := kmsg.NewPtrWriteTxnMarkersRequest()
			m := kmsg.NewWriteTxnMarkersRequestMarker()
			m.ProducerID, m.Committed = 1<<40+int64(v), true
			mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			mt.Topic, mt.Partitions = topic, []int32{0}
			m.Topics = append(m.Topics, mt)
			r.Markers = append(r.Markers, m)
			return r
		},
		32: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
			r.Resources = append(r.Resources, rr)
			return r
		},
		33: func(v int16) kmsg.Request {
			r := kmsg.NewPtrAlterConfigsRequest()
			rr := kmsg.NewAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
			rc := kmsg.NewAlterConfigsRequestResourceConfig()
			rc.Name, rc.Value = "retention.ms", kmsg.StringPtr(fmt.Sprint(3600000+int(v)))
			rr.Configs = append(rr.Configs, rc)
			r.Resources = append(r.Resources, rr)
			return r
		},
		44: func(v int16) kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name, rc.Value = "segment.ms", kmsg.StringPtr(fmt.Sprint(3600000+int(v)))
			rr.Configs = append(rr.Configs, rc)
			r.Resources = append(r.Resources, rr)
			return r
		},
		37: func(v int16) kmsg.Request {
			partitions++
			r := kmsg.NewPtrCreatePartitionsRequest()
			r.TimeoutMillis = 10000
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = topic, partitions
			r.Topics = append(r.Topics, rt)
			return r
		},
		55: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDescribeQuorumRequest()
			rt := kmsg.NewDescribeQuorumRequestTopic()
			rt.Topic = "__cluster_metadata"
			rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}
			r.Topics = append(r.Topics, rt)
			return r
		},
		60: func(v int16) kmsg.Request { return kmsg.NewPtrDescribeClusterRequest() },
		50: func(v int16) kmsg.Request { return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest() },
		51: func(v int16) kmsg.Request {
			r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
			u.Name, u.Mechanism, u.Iterations, u.Salt = fmt.Sprintf("sweep-v%d", v), 1, 4096, []byte("salt")
			u.SaltedPassword = make([]byte, 32)
			r.Upsertions = append(r.Upsertions, u)
			return r
		},
		// Each version sets a quota of its own client id, and describes
		// them all.
		49: func(v int16) kmsg.Request {
			r := kmsg.NewPtrAlterClientQuotasRequest()
			e := kmsg.NewAlterClientQuotasRequestEntry()
			e.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "client-id", Name: kmsg.StringPtr(fmt.Sprintf("sweep-v%d", v))}}
			e.Ops = []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1 << 30}}
			r.Entries = append(r.Entries, e)
			return r
		},
		48: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDescribeClientQuotasRequest()
			r.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "client-id", MatchType: 2}}
			return r
		},
		// Each version creates an ACL of its own principal, and deletes it.
		29: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDescribeACLsRequest()
			r.ResourceType, r.Operation, r.PermissionType = 1, 1, 1
			return r
		},
		30: func(v int16) kmsg.Request {
			r := kmsg.NewPtrCreateACLsRequest()
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.Principal, c.Host, c.Operation, c.PermissionType =
				2, topic, fmt.Sprintf("User:v%d", v), "*", 3, 3
			r.Creations = append(r.Creations, c)
			return r
		},
		31: func(v int16) kmsg.Request {
			r := kmsg.NewPtrDeleteACLsRequest()
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.Principal, f.Operation, f.PermissionType = 2, kmsg.StringPtr(fmt.Sprintf("User:v%d", v)), 1, 1
			r.Filters = append(r.Filters, f)
			return r
		},
		// The SASL requests go to the SASL listener, each version on a
		// connection of its own (saslSweep).
		17: nil,
		36: nil,
		28: func(v int16) kmsg.Request {
			// Offsets committed in a transaction of an id of its
			// own, its group's partition added to it (AddOffsetsToTxn)
			// so that the group coordinator's verification passes;
			// the transaction is left open.
			x := txnSweep{t: t, rc: rc, topic: topic}
			id := fmt.Sprintf("sweep-offsets-%d", v)
			pid, epoch := x.init(id)
			add := kmsg.NewPtrAddOffsetsToTxnRequest()
			add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, "sweep-txn"
			if c := x.retry(add, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode }).(*kmsg.AddOffsetsToTxnResponse).ErrorCode; c != 0 {
				t.Fatalf("AddOffsetsToTxn for the TxnOffsetCommit v%d sweep: error %d", v, c)
			}
			r := kmsg.NewPtrTxnOffsetCommitRequest()
			r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch, r.Generation = id, "sweep-txn", pid, epoch, -1
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Offset = int64(v)
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		// Every partition (null): those whose election is not needed
		// are left out of the answer, so it has no error.
		43: func(int16) kmsg.Request { return kmsg.NewPtrElectLeadersRequest() },
		45: func(int16) kmsg.Request {
			// The partition onto the replicas it has: nothing to move.
			r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
			rp.Replicas = []int32{1}
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		},
		46: func(int16) kmsg.Request { return kmsg.NewPtrListPartitionReassignmentsRequest() },
		// A lone broker cannot unregister itself: it is alive. The
		// sweep asks about an id never registered (wantCode).
		64: func(int16) kmsg.Request {
			r := kmsg.NewPtrUnregisterBrokerRequest()
			r.BrokerID = 99
			return r
		},
		35: func(int16) kmsg.Request { return kmsg.NewPtrDescribeLogDirsRequest() },
		61: func(int16) kmsg.Request {
			r := kmsg.NewPtrDescribeProducersRequest()
			rt := kmsg.NewDescribeProducersRequestTopic()
			rt.Topic, rt.Partitions = topic, []int32{0}
			r.Topics = append(r.Topics, rt)
			return r
		},
	}
	rc.waitGroupCoordinators(t)
	for k, mk := range (groupSweep{t: t, rc: rc, topic: topic}).builders() {
		build[k] = mk
	}
	for k, mk := range (txnSweep{t: t, rc: rc, topic: topic}).builders() {
		build[k] = mk
	}
	wantCode := map[int16]int16{64: 102} // BROKER_ID_NOT_REGISTERED
	versions := server.SupportedVersions()
	keys := make([]int, 0, len(versions))
	for k := range versions {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		mk, ok := build[int16(k)]
		if !ok {
			t.Errorf("no request built for API %s (%d): add one", kmsg.NameForKey(int16(k)), k)
			continue
		}
		if mk == nil {
			for v := versions[int16(k)][0]; v <= versions[int16(k)][1]; v++ {
				saslSweep(t, saslAddr, int16(k), v)
			}
			continue
		}
		for v := versions[int16(k)][0]; v <= versions[int16(k)][1]; v++ {
			req := mk(v)
			req.SetVersion(v)
			resp := rc.roundTrip(req)
			for _, code := range errorCodes(resp) {
				if code != wantCode[int16(k)] {
					t.Errorf("%s v%d: error code %d", kmsg.NameForKey(int16(k)), v, code)
				}
			}
			switch r := resp.(type) {
			case *kmsg.InitProducerIDResponse:
				if r.ProducerID <= pid {
					t.Errorf("InitProducerId v%d: id %d not fresh (previous %d)", v, r.ProducerID, pid)
				}
				pid = r.ProducerID
			case *kmsg.FetchResponse:
				if len(r.Topics) != 1 || len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
					t.Errorf("Fetch v%d: no records", v)
				}
			}
		}
	}
}

// saslSweep logs in with PLAIN on a new connection to the SASL listener,
// sending the SASL request of key at version v (SaslHandshake v0 is
// followed by the bare token of Kafka's first flow), and checks that a
// request is then served.
func saslSweep(t *testing.T, addr string, key, v int16) {
	t.Helper()
	rc := dialRaw(t, addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "PLAIN"
	hs.SetVersion(1)
	if key == 17 {
		hs.SetVersion(v)
	}
	if codes := errorCodes(rc.roundTrip(hs)); codes[0] != 0 {
		t.Errorf("SASLHandshake v%d: error code %d", hs.Version, codes[0])
		return
	}
	tok := []byte("\x00sweep\x00sweep-pw")
	if hs.Version == 0 {
		rc.write(append(wire.BigEndian.AppendUint32(nil, uint32(len(tok))), tok...))
		rc.c.SetReadDeadline(time.Now().Add(ioTimeout))
		if f, err := readFrame(rc.c); err != nil || len(f) != 4 {
			t.Errorf("SASLHandshake v0: bare answer %q, %v", f, err)
			return
		}
	} else {
		auth := kmsg.NewPtrSASLAuthenticateRequest()
		auth.SASLAuthBytes = tok
		auth.SetVersion(0)
		if key == 36 {
			auth.SetVersion(v)
		}
		if codes := errorCodes(rc.roundTrip(auth)); codes[0] != 0 {
			t.Errorf("SASLAuthenticate v%d: error code %d", auth.Version, codes[0])
			return
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	rc.roundTrip(md)
}

// TestPipelinedRequestsAnsweredInOrder writes many requests before reading
// any answer, mixing produces, fetches and metadata.
func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	b := startBroker(t, "")
	rc := dialRaw(t, b.addr)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	topic := "pipe"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md.AllowAutoTopicCreation = true
	rc.roundTrip(md)
	type sent struct {
		req  kmsg.Request
		corr int32
	}
	var all []sent
	for i := 0; i < 60; i++ {
		var req kmsg.Request
		switch i % 3 {
		case 0:
			p := kmsg.NewPtrProduceRequest()
			p.SetVersion(7)
			p.Acks, p.TimeoutMillis = -1, 10000
			p.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{
				Records: testbatch.Make(testbatch.Spec{Values: testbatch.Values(2, 10, byte(i))})}}}}
			req = p
		case 1:
			f := kmsg.NewPtrFetchRequest()
			f.SetVersion(11)
			f.MaxWaitMillis, f.MinBytes, f.MaxBytes, f.SessionEpoch = 10, 1, 1<<20, -1
			f.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{
				FetchOffset: 0, PartitionMaxBytes: 1 << 20, LogStartOffset: -1}}}}
			req = f
		default:
			m := kmsg.NewPtrMetadataRequest()
			m.SetVersion(9)
			req = m
		}
		all = append(all, sent{req, rc.send(req)})
	}
	next := int64(0)
	for _, s := range all {
		resp := rc.recv(s.req, s.corr)
		if p, ok := resp.(*kmsg.ProduceResponse); ok {
			got := p.Topics[0].Partitions[0]
			if got.ErrorCode != 0 || got.BaseOffset != next {
				t.Fatalf("produce answered out of order: base %d, want %d (code %d)", got.BaseOffset, next, got.ErrorCode)
			}
			next += 2
		}
	}
}

func TestIdleTimeoutAndConnectionLimit(t *testing.T) {
	b := startBroker(t, "", "--idle-timeout", "300ms", "--max-connections", "2")
	idle := dialRaw(t, b.addr)
	idle.expectClosed()
	waitLog(t, b, "INFO", "closing idle connection")
	// Two live connections fill the limit; a third is closed at once.
	c1, c2 := dialRaw(t, b.addr), dialRaw(t, b.addr)
	for _, c := range []*rawConn{c1, c2} {
		av := kmsg.NewPtrApiVersionsRequest()
		av.SetVersion(3)
		c.roundTrip(av)
	}
	c3 := dialRaw(t, b.addr)
	c3.expectClosed()
	waitLog(t, b, "WARN", "too many connections")
}

// TestLongPollWokenByProduce parks a fetch with a long MaxWait on an empty
// partition; a produce must wake it with the new record.
func TestLongPollWokenByProduce(t *testing.T) {
	b := startBroker(t, "")
	rc := dialRaw(t, b.addr)
	topic := "poll"
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md.AllowAutoTopicCreation = true
	rc.roundTrip(md)
	f := kmsg.NewPtrFetchRequest()
	f.SetVersion(12)
	f.MaxWaitMillis, f.MinBytes, f.MaxBytes, f.SessionEpoch = 120000, 1, 1<<20, -1
	f.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{
		FetchOffset: 0, PartitionMaxBytes: 1 << 20, LogStartOffset: -1}}}}
	corr := rc.send(f)
	pc := dialRaw(t, b.addr)
	p := kmsg.NewPtrProduceRequest()
	p.SetVersion(9)
	p.Acks, p.TimeoutMillis = -1, 10000
	p.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{
		Records: testbatch.Make(testbatch.Spec{Values: testbatch.Values(1, 10, 7)})}}}}
	pc.roundTrip(p)
	resp := rc.recv(f, corr).(*kmsg.FetchResponse)
	if len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatal("parked fetch returned without the produced record")
	}
}

// TestPipelinedWaitsRunFromReceipt pipelines four fetches that must wait
// out their MaxWait on one connection. Each wait runs from when the
// broker read the request, not from when the one before it was answered,
// so the last answer comes about one MaxWait after sending, not four.
func TestPipelinedWaitsRunFromReceipt(t *testing.T) {
	const wait = time.Second
	b := startBroker(t, "")
	rc := dialRaw(t, b.addr)
	topic := "waits"
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md.AllowAutoTopicCreation = true
	rc.roundTrip(md)
	f := kmsg.NewPtrFetchRequest()
	f.SetVersion(12)
	f.MaxWaitMillis, f.MinBytes, f.MaxBytes, f.SessionEpoch = int32(wait/time.Millisecond), 1, 1<<20, -1
	f.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{
		FetchOffset: 0, PartitionMaxBytes: 1 << 20, LogStartOffset: -1}}}}
	sent := time.Now()
	var corrs []int32
	for range 4 {
		corrs = append(corrs, rc.send(f))
	}
	for _, corr := range corrs {
		if resp := rc.recv(f, corr).(*kmsg.FetchResponse); resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("fetch %d: error code %d", corr, resp.Topics[0].Partitions[0].ErrorCode)
		}
	}
	// Waits that ran one after another would take 4 s; 3 s leaves room
	// for a loaded machine without letting that pass.
	if took := time.Since(sent); took >= 3*wait {
		t.Fatalf("four pipelined fetches with MaxWait %v took %v: their waits ran one after another", wait, took)
	}
}

// TestSIGTERMAnswersInFlightAndShutsDownCleanly parks a fetch, sends
// SIGTERM, and expects the fetch to be answered and a clean exit whose
// restart needs no recovery scan.
func TestSIGTERMAnswersInFlightAndShutsDownCleanly(t *testing.T) {
	b := startBroker(t, "")
	rc := dialRaw(t, b.addr)
	topic := "term"
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md.AllowAutoTopicCreation = true
	rc.roundTrip(md)
	p := kmsg.NewPtrProduceRequest()
	p.SetVersion(9)
	p.Acks, p.TimeoutMillis = -1, 10000
	p.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{
		Records: testbatch.Make(testbatch.Spec{Values: testbatch.Values(5, 10, 7)})}}}}
	rc.roundTrip(p)
	f := kmsg.NewPtrFetchRequest()
	f.SetVersion(12)
	f.MaxWaitMillis, f.MinBytes, f.MaxBytes, f.SessionEpoch = 120000, 1, 1<<20, -1
	f.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{
		FetchOffset: 5, PartitionMaxBytes: 1 << 20, LogStartOffset: -1}}}}
	corr := rc.send(f)
	waitLog(t, b, "DEBUG", "msg=request", "api=Fetch") // read, so SIGTERM must answer it
	b.stop()
	resp := rc.recv(f, corr).(*kmsg.FetchResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("in-flight fetch answered with code %d", code)
	}
	if !strings.Contains(b.logs(), "stopped cleanly") {
		t.Fatalf("no clean stop:\n%s", b.logs())
	}
	b.logMu.Lock()
	b.logBuf.Reset()
	b.logMu.Unlock()
	b.restart()
	if strings.Contains(b.logs(), "recovered partition log") {
		t.Fatalf("restart after a clean stop scanned the log:\n%s", b.logs())
	}
}

// TestIdempotentStateSurvivesRestart: after a clean restart and after a
// kill -9, a retried batch is recognised as a duplicate and answered with
// its original offsets.
func TestIdempotentStateSurvivesRestart(t *testing.T) {
	b := startBroker(t, "")
	topic := "idem"
	rc := dialRaw(t, b.addr)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(4)
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md.AllowAutoTopicCreation = true
	rc.roundTrip(md)
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.SetVersion(4)
	ip.ProducerID, ip.ProducerEpoch = -1, -1
	pid := rc.roundTrip(ip).(*kmsg.InitProducerIDResponse).ProducerID
	produce := func(rc *rawConn, seq int32) kmsg.ProduceResponseTopicPartition {
		p := kmsg.NewPtrProduceRequest()
		p.SetVersion(9)
		p.Acks, p.TimeoutMillis = -1, 10000
		batch := testbatch.Make(testbatch.Spec{Idempotent: true, ProducerID: pid, BaseSequence: seq, Values: testbatch.Values(2, 10, byte(seq))})
		p.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Records: batch}}}}
		return rc.roundTrip(p).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	for seq := int32(0); seq < 6; seq += 2 {
		if r := produce(rc, seq); r.ErrorCode != 0 || r.BaseOffset != int64(seq) {
			t.Fatalf("seq %d: %+v", seq, r)
		}
	}
	for _, how := range []string{"sigterm", "sigkill"} {
		if how == "sigterm" {
			b.stop()
		} else {
			b.kill()
		}
		b.restart()
		rc = dialRaw(t, b.addr)
		if r := produce(rc, 4); r.ErrorCode != 0 || r.BaseOffset != 4 {
			t.Fatalf("after %s: retried batch answered %+v, want its original offset 4", how, r)
		}
		if r := produce(rc, 8); r.ErrorCode != 45 {
			t.Fatalf("after %s: sequence gap answered code %d, want 45", how, r.ErrorCode)
		}
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.SetVersion(5)
	lo.ReplicaID = -1
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: -1, CurrentLeaderEpoch: -1}}}}
	if end := rc.roundTrip(lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].Offset; end != 6 {
		t.Fatalf("log end %d, want 6: a duplicate was written", end)
	}
}
