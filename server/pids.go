package server

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
)

// errTransactionsNotSupported is the error message of requests refused
// because they need transactions.
const errTransactionsNotSupported = "runnel does not support transactions"

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

func (s *Server) handleInitProducerID(r *kmsg.InitProducerIDRequest) kmsg.Response {
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
