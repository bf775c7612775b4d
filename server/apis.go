package server

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/protocol"
)

const (
	produceKey     = 0
	apiVersionsKey = 18
)

type versionRange struct{ min, max int16 }

// supported lists the API versions runnel answers. A request outside these
// closes the connection (Kafka does the same); ApiVersions itself answers
// an unsupported version with UNSUPPORTED_VERSION in a v0 body (KIP-511).
var supported = map[int16]versionRange{
	0:  {3, 11}, // Produce
	1:  {4, 16}, // Fetch
	2:  {0, 10}, // ListOffsets
	3:  {0, 12}, // Metadata
	18: {0, 4},  // ApiVersions
	19: {0, 7},  // CreateTopics
	20: {0, 6},  // DeleteTopics
	21: {0, 2},  // DeleteRecords
	22: {0, 4},  // InitProducerId
	23: {2, 4},  // OffsetForLeaderEpoch
	24: {0, 5},  // AddPartitionsToTxn
	25: {0, 4},  // AddOffsetsToTxn
	26: {0, 4},  // EndTxn
	27: {0, 2},  // WriteTxnMarkers
	28: {0, 4},  // TxnOffsetCommit
	61: {0, 0},  // DescribeProducers
	29: {0, 3},  // DescribeAcls
	30: {0, 3},  // CreateAcls
	31: {0, 3},  // DeleteAcls
	32: {0, 4},  // DescribeConfigs
	33: {0, 2},  // AlterConfigs
	44: {0, 1},  // IncrementalAlterConfigs
	45: {0, 1},  // AlterPartitionReassignments
	46: {0, 0},  // ListPartitionReassignments
	64: {0, 0},  // UnregisterBroker
	37: {0, 3},  // CreatePartitions
	55: {0, 2},  // DescribeQuorum
	60: {0, 2},  // DescribeCluster
	35: {0, 4},  // DescribeLogDirs
	43: {0, 2},  // ElectLeaders
	65: {0, 0},  // DescribeTransactions
	66: {0, 2},  // ListTransactions
	8:  {0, 9},  // OffsetCommit
	9:  {0, 9},  // OffsetFetch
	10: {0, 4},  // FindCoordinator
	11: {0, 9},  // JoinGroup
	12: {0, 4},  // Heartbeat
	13: {0, 5},  // LeaveGroup
	14: {0, 5},  // SyncGroup
	15: {0, 5},  // DescribeGroups
	16: {0, 5},  // ListGroups
	17: {0, 1},  // SaslHandshake
	36: {0, 2},  // SaslAuthenticate
	42: {0, 2},  // DeleteGroups
	47: {0, 0},  // OffsetDelete
	48: {0, 1},  // DescribeClientQuotas
	49: {0, 1},  // AlterClientQuotas
	50: {0, 0},  // DescribeUserScramCredentials
	51: {0, 0},  // AlterUserScramCredentials
}

func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" {
		return n
	}
	return fmt.Sprintf("Unknown(%d)", key)
}

// dispatch decodes a request body and hands it to its handler. An error
// means the request cannot be answered and the connection must close.
func (s *Server) dispatch(c *conn, h requestHeader, body []byte) (*reply, error) {
	if h.Key == apiVersionsKey {
		return s.handleAPIVersions(h, body), nil
	}
	vr, ok := supported[h.Key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAPI, apiName(h.Key))
	}
	if h.Version < vr.min || h.Version > vr.max {
		return nil, fmt.Errorf("%w: %s v%d (supported %d-%d)", ErrBadVersion, apiName(h.Key), h.Version, vr.min, vr.max)
	}
	req, err := decodeRequest(h.Key, h.Version, body)
	if err != nil {
		return nil, err
	}
	respond := func(resp kmsg.Response) *reply {
		resp.SetVersion(h.Version)
		return &reply{hdr: h, finish: func() any { return resp }}
	}
	if resp := s.refuseRequest(c, req); resp != nil {
		return respond(resp), nil
	}
	switch r := req.(type) {
	case *kmsg.CreateACLsRequest:
		return respond(s.handleCreateAcls(c, r)), nil
	case *kmsg.DescribeACLsRequest:
		return respond(s.handleDescribeAcls(c, r)), nil
	case *kmsg.DeleteACLsRequest:
		return respond(s.handleDeleteAcls(c, r)), nil
	case *kmsg.SASLHandshakeRequest:
		return c.handleSaslHandshake(h, r), nil
	case *kmsg.SASLAuthenticateRequest:
		return c.handleSaslAuthenticate(h, r), nil
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return respond(s.handleDescribeUserScramCredentials(r)), nil
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return respond(s.handleAlterUserScramCredentials(r)), nil
	case *kmsg.ProduceRequest:
		return s.handleProduce(c, h, r), nil
	case *kmsg.FetchRequest:
		replica := r.ReplicaID >= 0
		if h.Version >= 15 {
			replica = r.ReplicaState.ID >= 0
		}
		quota := !replica && s.capFetch(c, h, r)
		rep := s.handleFetch(c, h, r)
		rep.consumerQuota, rep.replicaFetch = quota, replica
		return rep, nil
	case *kmsg.DescribeClientQuotasRequest:
		return respond(s.handleDescribeClientQuotas(c, r)), nil
	case *kmsg.AlterClientQuotasRequest:
		return respond(s.handleAlterClientQuotas(c, r)), nil
	case *kmsg.ListOffsetsRequest:
		return respond(s.handleListOffsets(c, r)), nil
	case *kmsg.MetadataRequest:
		return respond(s.handleMetadata(c, r)), nil
	case *kmsg.CreateTopicsRequest:
		return respond(s.handleCreateTopics(c, r)), nil
	case *kmsg.DeleteTopicsRequest:
		return respond(s.handleDeleteTopics(c, r)), nil
	case *kmsg.CreatePartitionsRequest:
		return respond(s.handleCreatePartitions(c, r)), nil
	case *kmsg.DescribeConfigsRequest:
		return respond(s.handleDescribeConfigs(c, r)), nil
	case *kmsg.AlterConfigsRequest:
		return respond(s.handleAlterConfigs(c, r)), nil
	case *kmsg.IncrementalAlterConfigsRequest:
		return respond(s.handleIncrementalAlterConfigs(c, r)), nil
	case *kmsg.InitProducerIDRequest:
		return s.handleInitProducerID(c, h, r), nil
	case *kmsg.AddPartitionsToTxnRequest:
		return s.handleAddPartitionsToTxn(c, h, r), nil
	case *kmsg.AddOffsetsToTxnRequest:
		return s.handleAddOffsetsToTxn(c, h, r), nil
	case *kmsg.EndTxnRequest:
		return s.handleEndTxn(c, h, r), nil
	case *kmsg.DescribeTransactionsRequest:
		return respond(s.handleDescribeTransactions(c, r)), nil
	case *kmsg.ListTransactionsRequest:
		return respond(s.handleListTransactions(c, r)), nil
	case *kmsg.OffsetForLeaderEpochRequest:
		return respond(s.handleOffsetForLeaderEpoch(c, r)), nil
	case *kmsg.DeleteRecordsRequest:
		return respond(s.handleDeleteRecords(c, r)), nil
	case *kmsg.DescribeClusterRequest:
		return respond(s.handleDescribeCluster(c, r)), nil
	case *kmsg.DescribeQuorumRequest:
		return respond(s.handleDescribeQuorum(r)), nil
	case *kmsg.FindCoordinatorRequest:
		return respond(s.handleFindCoordinator(c, r)), nil
	case *kmsg.JoinGroupRequest:
		return s.handleJoinGroup(c, h, r), nil
	case *kmsg.SyncGroupRequest:
		return s.handleSyncGroup(c, h, r), nil
	case *kmsg.HeartbeatRequest:
		return respond(s.handleHeartbeat(r)), nil
	case *kmsg.LeaveGroupRequest:
		return respond(s.handleLeaveGroup(r)), nil
	case *kmsg.OffsetCommitRequest:
		return s.handleOffsetCommit(c, h, r), nil
	case *kmsg.OffsetFetchRequest:
		return respond(s.handleOffsetFetch(c, r)), nil
	case *kmsg.ListGroupsRequest:
		return respond(s.handleListGroups(c, r)), nil
	case *kmsg.DescribeGroupsRequest:
		return respond(s.handleDescribeGroups(c, r)), nil
	case *kmsg.DeleteGroupsRequest:
		return respond(s.handleDeleteGroups(c, r)), nil
	case *kmsg.WriteTxnMarkersRequest:
		return s.handleWriteTxnMarkers(c, h, r), nil
	case *kmsg.OffsetDeleteRequest:
		return respond(s.handleOffsetDelete(c, r)), nil
	case *kmsg.TxnOffsetCommitRequest:
		return s.handleTxnOffsetCommit(c, h, r), nil
	case *kmsg.DescribeProducersRequest:
		return respond(s.handleDescribeProducers(c, r)), nil
	case *kmsg.AlterPartitionAssignmentsRequest:
		return respond(s.handleAlterPartitionReassignments(c, r)), nil
	case *kmsg.ListPartitionReassignmentsRequest:
		return respond(s.handleListPartitionReassignments(c, r)), nil
	case *kmsg.UnregisterBrokerRequest:
		return respond(s.handleUnregisterBroker(c, r)), nil
	case *kmsg.ElectLeadersRequest:
		return respond(s.handleElectLeaders(c, r)), nil
	case *kmsg.DescribeLogDirsRequest:
		return respond(s.handleDescribeLogDirs(c, r)), nil
	}
	return nil, fmt.Errorf("%w: %s has no handler", ErrUnknownAPI, apiName(h.Key))
}

// decodeRequest decodes a request body. The body is first walked against
// its schema (protocol.Check), which bounds every count by the bytes left,
// so the decoder only ever reads a body of the shape it expects.
func decodeRequest(key, version int16, body []byte) (kmsg.Request, error) {
	if err := protocol.Check(key, version, body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedBody, err)
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %v", ErrMalformedBody, apiName(key), version, err)
	}
	return req, nil
}

func (s *Server) handleAPIVersions(h requestHeader, body []byte) *reply {
	resp := kmsg.NewPtrApiVersionsResponse()
	vr := supported[apiVersionsKey]
	if h.Version > vr.max {
		// KIP-511: answer in v0 so any client can read the error and the
		// versions, then retry with one it shares.
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		h.Flexible = false
	} else {
		resp.SetVersion(h.Version)
		if _, err := decodeRequest(h.Key, h.Version, body); err != nil {
			resp.ErrorCode = kerr.InvalidRequest.Code
		}
	}
	keys := make([]int16, 0, len(supported))
	for k := range supported {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		vr := supported[k]
		if k == produceKey {
			// KAFKA-18659, as Kafka 4.0 does: librdkafka before 2.11.1 turns
			// off gzip, snappy and lz4 unless the broker lists Produce v0, so
			// v0 is listed; dispatch still refuses v0-v2.
			vr.min = 0
		}
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{
			ApiKey: k, MinVersion: vr.min, MaxVersion: vr.max})
	}
	return &reply{hdr: h, finish: func() any { return resp }}
}

// SupportedVersions returns the API versions the server answers, by key, as
// [min, max].
func SupportedVersions() map[int16][2]int16 {
	out := make(map[int16][2]int16, len(supported))
	for k, v := range supported {
		out[k] = [2]int16{v.min, v.max}
	}
	return out
}
