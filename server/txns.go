package server

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/coordinator/groups"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// Transactions is the transaction coordinator (package coordinator/txns):
// each transactional id's state is kept by the leader of one partition of
// __transaction_state. Errors wrap coordinator.ErrNotCoordinator,
// coordinator.ErrLoadInProgress, coordinator.ErrNotAvailable or the errors
// of package txns.
type Transactions interface {
	Locate(id string) (int32, error)
	InitProducerID(id string, timeout time.Duration, producerID int64, epoch int16) (int64, int16, error)
	AddPartitions(id string, producerID int64, epoch int16, parts []txns.TopicPartition) error
	VerifyPartitions(id string, producerID int64, epoch int16, parts []txns.TopicPartition) ([]error, error)
	EndTxn(id string, producerID int64, epoch int16, commit bool) error
	// Verify checks with the id's coordinator, wherever it is, that the
	// partition is in the producer's open transaction (KIP-890).
	Verify(id string, producerID int64, epoch int16, tp txns.TopicPartition) error
	Describe(id string) (txns.Txn, error)
	List() []txns.Txn
}

// AllocateProducerID hands out a producer id from the blocks the metadata
// store reserves, for the transaction coordinator.
func (s *Server) AllocateProducerID() (int64, error) { return s.pids.allocate() }

// verifyTxnWrite checks, before a batch of a transactional produce opens
// its producer's transaction on p, that the coordinator has the partition
// in that transaction (KIP-890 part 1), so a zombie's or a late retry's
// batch cannot leave a transaction no coordinator will end. Batches of a
// transaction already open on p, and batches that are not transactional,
// pass without asking. Refusals are Kafka's: INVALID_TXN_STATE when the
// partition is not in the transaction, INVALID_PRODUCER_EPOCH for an older
// epoch, NOT_ENOUGH_REPLICAS (which producers retry) when the coordinator
// cannot answer now.
func (s *Server) verifyTxnWrite(id string, p *partition.Partition, records []byte) error {
	h, err := segment.ParseHeader(records)
	if err != nil || !h.IsTransactional() || h.ProducerID < 0 {
		return nil // Append refuses what does not parse
	}
	if _, open := p.OpenTransaction(h.ProducerID); open {
		return nil
	}
	err = s.txns.Verify(id, h.ProducerID, h.ProducerEpoch, txns.TopicPartition{Topic: p.Topic, Partition: p.Index})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, txns.ErrInvalidTxnState), errors.Is(err, txns.ErrInvalidProducerIDMapping):
		return fmt.Errorf("%w: the partition is not in the producer's transaction: %v", kerr.InvalidTxnState, err)
	case errors.Is(err, txns.ErrProducerFenced):
		return fmt.Errorf("%w: %v", kerr.InvalidProducerEpoch, err)
	}
	return fmt.Errorf("%w: the transaction could not be verified with its coordinator: %v", kerr.NotEnoughReplicas, err)
}

// fencedCode is the code of err for a request of version v: clients of
// versions before fencedSince know PRODUCER_FENCED as
// INVALID_PRODUCER_EPOCH, as Kafka answers them.
func fencedCode(err error, v, fencedSince int16) int16 {
	code := errorCode(err)
	if code == kerr.ProducerFenced.Code && v < fencedSince {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// logTxnRefusal logs a coordinator answer that refuses a client's input
// (not the retriable answers of normal operation).
func (s *Server) logTxnRefusal(c *conn, api, id string, err error) {
	if errors.Is(err, txns.ErrProducerFenced) || errors.Is(err, txns.ErrInvalidProducerIDMapping) ||
		errors.Is(err, txns.ErrInvalidTxnState) || errors.Is(err, txns.ErrInvalidTimeout) {
		c.warn("transaction request refused", "api", api, "remote", c.remote, "transactional_id", id, "err", err)
	}
}

// initTransactional answers InitProducerId for a transactional id, after
// refuseRequest checked WRITE on it.
func (s *Server) initTransactional(c *conn, h requestHeader, r *kmsg.InitProducerIDRequest) *reply {
	return &reply{hdr: h, finish: func() any {
		resp := kmsg.NewPtrInitProducerIDResponse()
		resp.SetVersion(h.Version)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		var err error
		switch {
		case *r.TransactionalID == "":
			resp.ErrorCode = kerr.InvalidRequest.Code
		default:
			pid, epoch := int64(-1), int16(-1)
			if r.Version >= 3 {
				pid, epoch = r.ProducerID, r.ProducerEpoch
			}
			var gotPID int64
			var gotEpoch int16
			gotPID, gotEpoch, err = s.txns.InitProducerID(*r.TransactionalID,
				time.Duration(r.TransactionTimeoutMillis)*time.Millisecond, pid, epoch)
			resp.ErrorCode = fencedCode(err, r.Version, 4)
			if err == nil {
				resp.ProducerID, resp.ProducerEpoch = gotPID, gotEpoch
			}
		}
		s.logTxnRefusal(c, "InitProducerId", *r.TransactionalID, err)
		s.m.errorCode("InitProducerId", resp.ErrorCode)
		return resp
	}}
}

// checkTxnPartitions checks what Kafka checks before adding partitions to
// a transaction: WRITE on each topic, and that each partition exists. It
// returns the code of each partition refused.
func (s *Server) checkTxnPartitions(c *conn, topics map[string][]int32, checkACL bool) map[txns.TopicPartition]int16 {
	refused := map[txns.TopicPartition]int16{}
	for topic, parts := range topics {
		allowed := !checkACL || s.authorize(c, "AddPartitionsToTxn", authz.OpWrite, authz.ResourceTopic, topic)
		t, exists := s.meta.Topic(topic)
		for _, p := range parts {
			tp := txns.TopicPartition{Topic: topic, Partition: p}
			switch {
			case !allowed:
				refused[tp] = kerr.TopicAuthorizationFailed.Code
			case !exists || p < 0 || p >= t.Partitions:
				refused[tp] = kerr.UnknownTopicOrPartition.Code
			}
		}
	}
	return refused
}

// addTxnPartitions adds topics to id's transaction and returns each
// partition's code: those refused, OPERATION_NOT_ATTEMPTED for the others
// when any is, else the coordinator's answer.
func (s *Server) addTxnPartitions(c *conn, id string, pid int64, epoch int16, topics map[string][]int32, checkACL bool, v int16) func(tp txns.TopicPartition) int16 {
	if checkACL && !s.authorize(c, "AddPartitionsToTxn", authz.OpWrite, authz.ResourceTransactionalID, id) {
		return func(txns.TopicPartition) int16 { return kerr.TransactionalIDAuthorizationFailed.Code }
	}
	refused := s.checkTxnPartitions(c, topics, checkACL)
	if len(refused) > 0 {
		return func(tp txns.TopicPartition) int16 {
			if code, ok := refused[tp]; ok {
				return code
			}
			return kerr.OperationNotAttempted.Code
		}
	}
	var parts []txns.TopicPartition
	for topic, ps := range topics {
		for _, p := range ps {
			parts = append(parts, txns.TopicPartition{Topic: topic, Partition: p})
		}
	}
	err := s.txns.AddPartitions(id, pid, epoch, parts)
	s.logTxnRefusal(c, "AddPartitionsToTxn", id, err)
	code := fencedCode(err, v, 2)
	return func(txns.TopicPartition) int16 { return code }
}

func topicsOf[T any](ts []T, get func(*T) (string, []int32)) map[string][]int32 {
	out := map[string][]int32{}
	for i := range ts {
		name, parts := get(&ts[i])
		out[name] = append(out[name], parts...)
	}
	return out
}

func (s *Server) handleAddPartitionsToTxn(c *conn, h requestHeader, r *kmsg.AddPartitionsToTxnRequest) *reply {
	// Versions 4 and up are the brokers' (KIP-890): CLUSTER_ACTION, as in
	// Kafka, checked before the writer runs, where c's principal is read.
	clusterAllowed := r.Version < 4 || s.authorize(c, "AddPartitionsToTxn", authz.OpClusterAction, authz.ResourceCluster, clusterResource)
	return &reply{hdr: h, finish: func() any {
		resp := kmsg.NewPtrAddPartitionsToTxnResponse()
		resp.SetVersion(h.Version)
		if r.Version < 4 {
			topics := topicsOf(r.Topics, func(t *kmsg.AddPartitionsToTxnRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
			code := s.addTxnPartitions(c, r.TransactionalID, r.ProducerID, r.ProducerEpoch, topics, true, r.Version)
			for _, t := range r.Topics {
				rt := kmsg.NewAddPartitionsToTxnResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p, code(txns.TopicPartition{Topic: t.Topic, Partition: p})
					s.m.errorCode("AddPartitionsToTxn", rp.ErrorCode)
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		if !clusterAllowed {
			resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			return resp
		}
		for _, tx := range r.Transactions {
			rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
			rtx.TransactionalID = tx.TransactionalID
			var code func(txns.TopicPartition) int16
			if tx.VerifyOnly {
				code = s.verifyTxnPartitions(tx)
			} else {
				topics := topicsOf(tx.Topics, func(t *kmsg.AddPartitionsToTxnRequestTransactionTopic) (string, []int32) {
					return t.Topic, t.Partitions
				})
				code = s.addTxnPartitions(c, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, topics, false, r.Version)
			}
			for _, t := range tx.Topics {
				rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
					rp.Partition, rp.ErrorCode = p, code(txns.TopicPartition{Topic: t.Topic, Partition: p})
					s.m.errorCode("AddPartitionsToTxn", rp.ErrorCode)
					rt.Partitions = append(rt.Partitions, rp)
				}
				rtx.Topics = append(rtx.Topics, rt)
			}
			resp.Transactions = append(resp.Transactions, rtx)
		}
		return resp
	}}
}

// verifyTxnPartitions answers a verify-only transaction of
// AddPartitionsToTxn v4+.
func (s *Server) verifyTxnPartitions(tx kmsg.AddPartitionsToTxnRequestTransaction) func(txns.TopicPartition) int16 {
	var parts []txns.TopicPartition
	for _, t := range tx.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, txns.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	errs, err := s.txns.VerifyPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts)
	if err != nil {
		code := errorCode(err)
		return func(txns.TopicPartition) int16 { return code }
	}
	codes := make(map[txns.TopicPartition]int16, len(parts))
	for i, tp := range parts {
		codes[tp] = errorCode(errs[i])
	}
	return func(tp txns.TopicPartition) int16 { return codes[tp] }
}

// handleAddOffsetsToTxn adds the group's partition of __consumer_offsets
// to the transaction, so that EndTxn writes its marker there too.
func (s *Server) handleAddOffsetsToTxn(c *conn, h requestHeader, r *kmsg.AddOffsetsToTxnRequest) *reply {
	idAllowed := s.authorize(c, "AddOffsetsToTxn", authz.OpWrite, authz.ResourceTransactionalID, r.TransactionalID)
	groupAllowed := idAllowed && s.authorize(c, "AddOffsetsToTxn", authz.OpRead, authz.ResourceGroup, r.Group)
	return &reply{hdr: h, finish: func() any {
		resp := kmsg.NewPtrAddOffsetsToTxnResponse()
		resp.SetVersion(h.Version)
		var err error
		switch {
		case !idAllowed:
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		case !groupAllowed:
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		default:
			t, ok := s.meta.Topic(groups.Topic)
			if !ok {
				// The group has never had a coordinator: create the
				// topic, and let the client retry.
				_, err = s.groups.Locate(r.Group)
				if err == nil {
					err = kerr.CoordinatorNotAvailable
				}
				resp.ErrorCode = errorCode(err)
				break
			}
			tp := txns.TopicPartition{Topic: groups.Topic, Partition: groups.PartitionFor(r.Group, t.Partitions)}
			err = s.txns.AddPartitions(r.TransactionalID, r.ProducerID, r.ProducerEpoch, []txns.TopicPartition{tp})
			resp.ErrorCode = fencedCode(err, r.Version, 2)
		}
		s.logTxnRefusal(c, "AddOffsetsToTxn", r.TransactionalID, err)
		s.m.errorCode("AddOffsetsToTxn", resp.ErrorCode)
		return resp
	}}
}

func (s *Server) handleEndTxn(c *conn, h requestHeader, r *kmsg.EndTxnRequest) *reply {
	allowed := s.authorize(c, "EndTxn", authz.OpWrite, authz.ResourceTransactionalID, r.TransactionalID)
	return &reply{hdr: h, finish: func() any {
		resp := kmsg.NewPtrEndTxnResponse()
		resp.SetVersion(h.Version)
		if !allowed {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			return resp
		}
		err := s.txns.EndTxn(r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit)
		resp.ErrorCode = fencedCode(err, r.Version, 2)
		s.logTxnRefusal(c, "EndTxn", r.TransactionalID, err)
		s.m.errorCode("EndTxn", resp.ErrorCode)
		return resp
	}}
}

func (s *Server) handleDescribeTransactions(c *conn, r *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeTransactionsResponse()
	for _, id := range r.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.State, st.StartTimestamp, st.ProducerID, st.ProducerEpoch = id, "", -1, -1, -1
		if !s.authorize(c, "DescribeTransactions", authz.OpDescribe, authz.ResourceTransactionalID, id) {
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		tx, err := s.txns.Describe(id)
		st.ErrorCode = errorCode(err)
		if err == nil {
			st.State, st.TimeoutMillis, st.ProducerID, st.ProducerEpoch =
				tx.State.String(), int32(tx.Timeout/time.Millisecond), tx.ProducerID, tx.Epoch
			if !tx.Start.IsZero() {
				st.StartTimestamp = tx.Start.UnixMilli()
			}
			// As Kafka: only the topics the client may describe.
			for _, tp := range tx.Partitions {
				if !s.mayDescribe(c, authz.ResourceTopic, tp.Topic) {
					continue
				}
				if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
					t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					t.Topic = tp.Topic
					st.Topics = append(st.Topics, t)
				}
				last := &st.Topics[len(st.Topics)-1]
				last.Partitions = append(last.Partitions, tp.Partition)
			}
		}
		s.m.errorCode("DescribeTransactions", st.ErrorCode)
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

// handleListTransactions lists the transactional ids this broker
// coordinates (admin clients ask every broker, as of Kafka's) that the
// client may describe, filtered as asked.
func (s *Server) handleListTransactions(c *conn, r *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := kmsg.NewPtrListTransactionsResponse()
	states := map[txns.State]bool{}
	for _, name := range r.StateFilters {
		if st, ok := txnStateNamed(name); ok {
			states[st] = true
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	pids := map[int64]bool{}
	for _, id := range r.ProducerIDFilters {
		pids[id] = true
	}
	var pattern *regexp.Regexp
	if r.Version >= 2 && r.TransactionalIDPattern != nil && *r.TransactionalIDPattern != "" {
		var err error
		if pattern, err = regexp.Compile(*r.TransactionalIDPattern); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			s.m.errorCode("ListTransactions", resp.ErrorCode)
			c.warn("ListTransactions refused", "remote", c.remote, "pattern", *r.TransactionalIDPattern, "err", err)
			return resp
		}
	}
	now := time.Now()
	for _, tx := range s.txns.List() {
		switch {
		case len(r.StateFilters) > 0 && !states[tx.State]:
			continue
		case len(pids) > 0 && !pids[tx.ProducerID]:
			continue
		case r.Version >= 1 && r.DurationFilterMillis >= 0 && !tx.Start.IsZero() &&
			now.Sub(tx.Start) <= time.Duration(r.DurationFilterMillis)*time.Millisecond:
			// As Kafka: an id that never started a transaction (start
			// -1) passes the filter.
			continue
		case pattern != nil && !pattern.MatchString(tx.ID):
			continue
		case !s.mayDescribe(c, authz.ResourceTransactionalID, tx.ID):
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = tx.ID, tx.ProducerID, tx.State.String()
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

func txnStateNamed(name string) (txns.State, bool) {
	for st := txns.Empty; st <= txns.PrepareEpochFence; st++ {
		if st.String() == name {
			return st, true
		}
	}
	return 0, false
}
