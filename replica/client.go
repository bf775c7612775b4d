package replica

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
)

// conn is a follower's Kafka connection to a leader: one request at a
// time, each with a pinned version.
type conn struct {
	c    net.Conn
	r    *bufio.Reader
	f    *kmsg.RequestFormatter
	corr int32
	buf  []byte
}

const maxResponse = 256 << 20

func dial(ctx context.Context, dialer func(context.Context, string) (net.Conn, error), addr string, clientID string) (*conn, error) {
	if dialer == nil {
		var d net.Dialer
		dialer = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	c, err := dialer(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReaderSize(c, 64<<10), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))}, nil
}

func (c *conn) Close() error { return c.c.Close() }

// do sends req and reads its response, within timeout or until ctx ends,
// which fails the call at once: a leader on a dead link must not hold up
// the fetcher's stop for the whole timeout.
func (c *conn) do(ctx context.Context, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	c.corr++
	c.buf = c.f.AppendRequest(c.buf[:0], req, c.corr)
	c.c.SetDeadline(time.Now().Add(timeout))
	defer c.c.SetDeadline(time.Time{})
	defer context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })()
	if _, err := c.c.Write(c.buf); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > maxResponse {
		return nil, fmt.Errorf("replica: response of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != c.corr {
		return nil, fmt.Errorf("replica: response correlation id %d, want %d", corr, c.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		r := kbin.Reader{Src: body}
		for n := r.Uvarint(); n > 0; n-- { // response header tags
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
		if err := r.Complete(); err != nil {
			return nil, fmt.Errorf("replica: response header: %w", err)
		}
		body = r.Src
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("replica: decoding %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// HighWatermarks asks the broker at addr, on its inter-broker listener
// (dialled as followers dial their leaders), for the high watermarks of
// partitions with one ListOffsets request (latest, read_uncommitted). A
// partition the broker answers with an error for is left out. The
// connection is closed before it returns.
func (m *Manager) HighWatermarks(ctx context.Context, addr string, partitions []cluster.TP) (map[cluster.TP]int64, error) {
	c, err := dial(ctx, m.o.Dial, addr, "runnel-lag-"+strconv.Itoa(int(m.o.NodeID)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(4)
	req.ReplicaID = -1
	byTopic := map[string]int{}
	for _, tp := range partitions {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[tp.Topic] = i
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = tp.Topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Partition, p.Timestamp, p.CurrentLeaderEpoch = tp.Partition, -1, -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	resp, err := c.do(ctx, req, timeout)
	if err != nil {
		return nil, err
	}
	out := map[cluster.TP]int64{}
	for _, t := range resp.(*kmsg.ListOffsetsResponse).Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 && p.Offset >= 0 {
				out[cluster.TP{Topic: t.Topic, Partition: p.Partition}] = p.Offset
			}
		}
	}
	return out, nil
}
