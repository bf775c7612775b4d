package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator/txns"
)

// errTransactionsNotSupported is the error message of requests refused
// because the server has no transaction coordinator.
const errTransactionsNotSupported = "this server has no transaction coordinator"

// noTransactions is the coordinator of a server configured without one:
// it refuses everything with UNSUPPORTED_VERSION.
type noTransactions struct{}

var errNoTransactions = fmt.Errorf("%w: %s", kerr.UnsupportedVersion, errTransactionsNotSupported)

func (noTransactions) Locate(string) (int32, error) { return -1, errNoTransactions }
func (noTransactions) InitProducerID(string, time.Duration, int64, int16) (int64, int16, error) {
	return -1, -1, errNoTransactions
}
func (noTransactions) AddPartitions(string, int64, int16, []txns.TopicPartition) error {
	return errNoTransactions
}
func (noTransactions) VerifyPartitions(string, int64, int16, []txns.TopicPartition) ([]error, error) {
	return nil, errNoTransactions
}
func (noTransactions) EndTxn(string, int64, int16, bool) error { return errNoTransactions }

// Verify lets every transactional batch through: without a coordinator
// there is nothing to check it against.
func (noTransactions) Verify(string, int64, int16, txns.TopicPartition) error { return nil }
func (noTransactions) Describe(string) (txns.Txn, error)                      { return txns.Txn{}, errNoTransactions }
func (noTransactions) List() []txns.Txn                                       { return nil }

// pidBlock is how many producer ids are reserved in the store at a time;
// ids of a block not handed out before a restart are skipped, never reused.
const pidBlock = 1000

type producerIDs struct {
	meta cluster.Store
	mu   sync.Mutex
	next int64
	end  int64
}

func (p *producerIDs) allocate() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == p.end {
		first, err := p.meta.AllocateProducerIDs(pidBlock)
		if err != nil {
			return 0, err
		}
		p.next, p.end = first, first+pidBlock
	}
	id := p.next
	p.next++
	return id, nil
}

func (s *Server) handleInitProducerID(c *conn, h requestHeader, r *kmsg.InitProducerIDRequest) *reply {
	if _, none := s.txns.(noTransactions); r.TransactionalID != nil && !none {
		return s.initTransactional(c, h, r)
	}
	resp := s.initIdempotent(r)
	resp.SetVersion(h.Version)
	return &reply{hdr: h, finish: func() any { return resp }}
}

func (s *Server) initIdempotent(r *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	switch {
	case r.TransactionalID != nil:
		// As FindCoordinator answers for a transactional id.
		err := fmt.Errorf("%w: %s", kerr.UnsupportedVersion, errTransactionsNotSupported)
		resp.ErrorCode = errorCode(err)
		s.log.Info("InitProducerId refused", "transactional_id", *r.TransactionalID, "err", err)
	case r.ProducerID >= 0 && r.ProducerEpoch >= 0:
		// KIP-360: an idempotent producer resets its sequences by bumping
		// its own epoch; a new id is handed out when the epoch is spent.
		if r.ProducerEpoch < 32766 {
			resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch+1
			break
		}
		fallthrough
	default:
		id, err := s.pids.allocate()
		if err != nil {
			resp.ErrorCode = errorCode(err)
			s.log.Error("allocating producer ids failed", "err", err)
			break
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
	}
	s.m.errorCode("InitProducerId", resp.ErrorCode)
	return resp
}
