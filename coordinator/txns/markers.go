package txns

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/partition"
)

// Marker is the commit or abort marker of one transaction, for each of its
// partitions.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
	Partitions       []TopicPartition
}

// MarkerWriter writes transaction markers to the leaders of partitions.
type MarkerWriter interface {
	// WriteMarkers writes m to each of its partitions and returns one
	// error per partition, nil for each whose marker the in-sync replicas
	// hold (or whose topic is gone). partition.ErrCoordinatorFenced and
	// partition.ErrProducerFenced are the partition's refusals; any other
	// error is worth a retry.
	WriteMarkers(ctx context.Context, m Marker) []error
}

// markerTimeout bounds one round of markers, as Kafka's
// request.timeout.ms does for WriteTxnMarkers.
const markerTimeout = 30 * time.Second

// markerVersion is the WriteTxnMarkers version sent to other brokers.
const markerVersion = 1

// BrokerMarkers writes markers to partitions led by this broker directly,
// and sends WriteTxnMarkers to the leaders of the others over their
// inter-broker listener, one connection per broker at a time.
type BrokerMarkers struct {
	nodeID int32
	parts  *partition.Manager
	meta   Meta
	dial   func(ctx context.Context, addr string) (net.Conn, error)
	log    *slog.Logger

	mu    sync.Mutex
	conns map[int32]*markerConn
}

// NewBrokerMarkers returns the marker writer of broker nodeID.
func NewBrokerMarkers(nodeID int32, parts *partition.Manager, meta Meta, dial func(context.Context, string) (net.Conn, error), log *slog.Logger) *BrokerMarkers {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	return &BrokerMarkers{nodeID: nodeID, parts: parts, meta: meta, dial: dial, log: log, conns: map[int32]*markerConn{}}
}

// WriteMarkers implements MarkerWriter.
func (b *BrokerMarkers) WriteMarkers(ctx context.Context, m Marker) []error {
	ctx, cancel := context.WithTimeout(ctx, markerTimeout)
	defer cancel()
	errs := make([]error, len(m.Partitions))
	remote := map[int32][]int{}
	for i, tp := range m.Partitions {
		if _, ok := b.meta.Topic(tp.Topic); !ok {
			continue // the topic is gone, and its transactions with it
		}
		info, ok := b.meta.Partition(tp.Topic, tp.Partition)
		switch {
		case !ok:
			continue
		case info.Leader < 0:
			errs[i] = fmt.Errorf("%w: %s-%d has no leader", partition.ErrLeaderNotAvailable, tp.Topic, tp.Partition)
		case info.Leader == b.nodeID && b.parts != nil:
			errs[i] = b.writeLocal(ctx, m, tp)
		default:
			remote[info.Leader] = append(remote[info.Leader], i)
		}
	}
	for leader, idx := range remote {
		b.writeRemote(ctx, leader, m, idx, errs)
	}
	return errs
}

func (b *BrokerMarkers) writeLocal(ctx context.Context, m Marker, tp TopicPartition) error {
	p, err := b.parts.Get(tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	res, err := p.WriteMarker(m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Commit)
	if err != nil {
		return err
	}
	p.RequestSync()
	return p.WaitReplicated(ctx, res.LastOffset+1, res.Epoch)
}

// writeRemote sends the markers of partitions idx of m to leader, and sets
// their errors.
func (b *BrokerMarkers) writeRemote(ctx context.Context, leader int32, m Marker, idx []int, errs []error) {
	fail := func(err error) {
		for _, i := range idx {
			errs[i] = err
		}
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(markerVersion)
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	at := map[TopicPartition]int{}
	for _, i := range idx {
		tp := m.Partitions[i]
		at[tp] = i
		if n := len(rm.Topics); n == 0 || rm.Topics[n-1].Topic != tp.Topic {
			rt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			rt.Topic = tp.Topic
			rm.Topics = append(rm.Topics, rt)
		}
		last := &rm.Topics[len(rm.Topics)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	req.Markers = []kmsg.WriteTxnMarkersRequestMarker{rm}
	c, err := b.conn(ctx, leader)
	if err != nil {
		fail(err)
		return
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		b.drop(leader, c)
		fail(fmt.Errorf("txns: WriteTxnMarkers to broker %d: %w", leader, err))
		return
	}
	fail(errors.New("txns: the leader did not answer for the partition"))
	for _, rm := range resp.(*kmsg.WriteTxnMarkersResponse).Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				if i, ok := at[TopicPartition{Topic: rt.Topic, Partition: rp.Partition}]; ok {
					errs[i] = markerError(rp.ErrorCode)
				}
			}
		}
	}
}

// markerError turns a partition's answer into the error WriteMarkers
// reports.
func markerError(code int16) error {
	switch err := kerr.ErrorForCode(code); {
	case err == nil:
		return nil
	case errors.Is(err, kerr.TransactionCoordinatorFenced):
		return fmt.Errorf("%w: %v", partition.ErrCoordinatorFenced, err)
	case errors.Is(err, kerr.InvalidProducerEpoch), errors.Is(err, kerr.ProducerFenced):
		return fmt.Errorf("%w: %v", partition.ErrProducerFenced, err)
	default:
		return err
	}
}

func (b *BrokerMarkers) conn(ctx context.Context, id int32) (*markerConn, error) {
	b.mu.Lock()
	c := b.conns[id]
	b.mu.Unlock()
	if c != nil {
		return c, nil
	}
	addr := ""
	for _, br := range b.meta.Brokers() {
		if br.ID == id {
			addr = br.Addr
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("txns: broker %d has no inter-broker address", id)
	}
	nc, err := b.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("txns: dialling broker %d at %s: %w", id, addr, err)
	}
	c = &markerConn{c: nc, r: bufio.NewReader(nc),
		f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("runnel-txn-coordinator-" + strconv.Itoa(int(b.nodeID))))}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.conns[id]; old != nil {
		nc.Close()
		return old, nil
	}
	b.conns[id] = c
	return c, nil
}

func (b *BrokerMarkers) drop(id int32, c *markerConn) {
	b.mu.Lock()
	if b.conns[id] == c {
		delete(b.conns, id)
	}
	b.mu.Unlock()
	c.c.Close()
}

// Close closes the connections to other brokers.
func (b *BrokerMarkers) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, c := range b.conns {
		c.c.Close()
		delete(b.conns, id)
	}
}

// markerConn is one connection to another broker: one request at a time.
type markerConn struct {
	mu   sync.Mutex
	c    net.Conn
	r    *bufio.Reader
	f    *kmsg.RequestFormatter
	corr int32
}

const maxMarkerResponse = 16 << 20

func (c *markerConn) do(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corr++
	buf := c.f.AppendRequest(nil, req, c.corr)
	deadline, _ := ctx.Deadline()
	c.c.SetDeadline(deadline)
	defer c.c.SetDeadline(time.Time{})
	defer context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })()
	if _, err := c.c.Write(buf); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > maxMarkerResponse {
		return nil, fmt.Errorf("response of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != c.corr {
		return nil, fmt.Errorf("response correlation id %d, want %d", corr, c.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		r := kbin.Reader{Src: body}
		for n := r.Uvarint(); n > 0; n-- {
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
		if err := r.Complete(); err != nil {
			return nil, fmt.Errorf("response header: %w", err)
		}
		body = r.Src
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding the %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}
