package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnSweep builds the transaction requests of TestEveryAPIVersion: each
// version works on a transactional id of its own, initialised over rc.
type txnSweep struct {
	t     *testing.T
	rc    *rawConn
	topic string
}

// retry sends req until its error code (read by code) is not one the
// coordinator answers while it loads or finishes a change.
func (x txnSweep) retry(req kmsg.Request, code func(kmsg.Response) int16) kmsg.Response {
	x.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := x.rc.roundTrip(req)
		switch c := code(resp); c {
		case kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code,
			kerr.ConcurrentTransactions.Code:
			if time.Now().After(deadline) {
				x.t.Fatalf("%s: error %d after 30 s", kmsg.NameForKey(req.Key()), c)
			}
			time.Sleep(20 * time.Millisecond)
		default:
			return resp
		}
	}
}

// init returns a producer id and epoch for a new transactional id.
func (x txnSweep) init(id string) (int64, int16) {
	x.t.Helper()
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorType, fc.CoordinatorKey = 1, id
	x.retry(fc, func(r kmsg.Response) int16 { return r.(*kmsg.FindCoordinatorResponse).ErrorCode })
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.SetVersion(4)
	ip.TransactionalID, ip.TransactionTimeoutMillis, ip.ProducerID, ip.ProducerEpoch = kmsg.StringPtr(id), 60000, -1, -1
	resp := x.retry(ip, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode }).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		x.t.Fatalf("InitProducerId %s: error %d", id, resp.ErrorCode)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// add puts partition 0 of the topic in id's transaction.
func (x txnSweep) add(id string, pid int64, epoch int16) {
	x.t.Helper()
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.SetVersion(3)
	r.TransactionalID, r.ProducerID, r.ProducerEpoch = id, pid, epoch
	r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: x.topic, Partitions: []int32{0}}}
	x.retry(r, func(resp kmsg.Response) int16 { return errorCodes(resp)[0] })
}

func (x txnSweep) builders() map[int16]func(v int16) kmsg.Request {
	name := func(api string, v int16) string { return fmt.Sprintf("sweep-%s-v%d", api, v) }
	return map[int16]func(v int16) kmsg.Request{
		24: func(v int16) kmsg.Request {
			id := name("addpartitions", v)
			pid, epoch := x.init(id)
			r := kmsg.NewPtrAddPartitionsToTxnRequest()
			r.TransactionalID, r.ProducerID, r.ProducerEpoch = id, pid, epoch
			r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: x.topic, Partitions: []int32{0}}}
			tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
			tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = id, pid, epoch
			tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: x.topic, Partitions: []int32{0}}}
			r.Transactions = append(r.Transactions, tx)
			return r
		},
		25: func(v int16) kmsg.Request {
			id := name("addoffsets", v)
			pid, epoch := x.init(id)
			r := kmsg.NewPtrAddOffsetsToTxnRequest()
			r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = id, pid, epoch, name("txn-group", v)
			return r
		},
		26: func(v int16) kmsg.Request {
			id := name("endtxn", v)
			pid, epoch := x.init(id)
			x.add(id, pid, epoch)
			r := kmsg.NewPtrEndTxnRequest()
			r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = id, pid, epoch, v%2 == 0
			return r
		},
		65: func(v int16) kmsg.Request {
			id := name("describetxn", v)
			x.init(id)
			r := kmsg.NewPtrDescribeTransactionsRequest()
			r.TransactionalIDs = []string{id}
			return r
		},
		66: func(v int16) kmsg.Request {
			r := kmsg.NewPtrListTransactionsRequest()
			r.StateFilters = []string{"Empty", "Ongoing"}
			return r
		},
	}
}
