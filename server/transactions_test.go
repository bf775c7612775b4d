package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTransactionsRefusedNonRetriably: a server without a transaction
// coordinator answers FindCoordinator for a transactional id and
// InitProducerId with one UNSUPPORTED_VERSION, which clients do not retry,
// at every version; group coordinators are still found.
func TestTransactionsRefusedNonRetriably(t *testing.T) {
	ts := newTestServer(t, Config{})
	if kerr.UnsupportedVersion.Retriable {
		t.Fatal("UNSUPPORTED_VERSION is retriable")
	}
	for v := int16(1); v <= 4; v++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(v)
		req.CoordinatorType = 1
		req.CoordinatorKey, req.CoordinatorKeys = "tx", []string{"tx", "tx2"}
		resp := ts.call(t, req).(*kmsg.FindCoordinatorResponse)
		codes := []int16{resp.ErrorCode}
		if v >= 4 {
			codes = codes[:0]
			for _, c := range resp.Coordinators {
				codes = append(codes, c.ErrorCode)
			}
			if len(codes) != 2 {
				t.Fatalf("FindCoordinator v%d: %d coordinators answered, want 2", v, len(codes))
			}
		}
		for _, c := range codes {
			if c != kerr.UnsupportedVersion.Code {
				t.Errorf("FindCoordinator v%d for a transactional id: error %d, want %d", v, c, kerr.UnsupportedVersion.Code)
			}
		}

		group := kmsg.NewPtrFindCoordinatorRequest()
		group.SetVersion(v)
		group.CoordinatorKey, group.CoordinatorKeys = "g", []string{"g"}
		gr := ts.call(t, group).(*kmsg.FindCoordinatorResponse)
		if gr.ErrorCode != 0 || (v >= 4 && gr.Coordinators[0].ErrorCode != 0) {
			t.Errorf("FindCoordinator v%d for a group: %+v", v, gr)
		}
	}
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(v)
		req.TransactionalID = kmsg.StringPtr("tx")
		req.TransactionTimeoutMillis = 60000
		resp := ts.call(t, req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || resp.ProducerID != -1 {
			t.Errorf("InitProducerId v%d with a transactional id: error %d, id %d", v, resp.ErrorCode, resp.ProducerID)
		}
	}
}
