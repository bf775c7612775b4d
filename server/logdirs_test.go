package server

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
)

func logDirsRequest(v int16, topics map[string][]int32) *kmsg.DescribeLogDirsRequest {
	r := kmsg.NewPtrDescribeLogDirsRequest()
	r.SetVersion(v)
	if topics != nil {
		r.Topics = []kmsg.DescribeLogDirsRequestTopic{}
	}
	for name, ps := range topics {
		rt := kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic, rt.Partitions = name, ps
		r.Topics = append(r.Topics, rt)
	}
	return r
}

// sizes returns each partition's size in a DescribeLogDirs answer's one
// directory, as "topic-partition" → size, failing the test on a lag or a
// future replica.
func sizes(t *testing.T, resp *kmsg.DescribeLogDirsResponse) map[string]int64 {
	t.Helper()
	if len(resp.Dirs) != 1 {
		t.Fatalf("%d log directories", len(resp.Dirs))
	}
	out := map[string]int64{}
	for _, rt := range resp.Dirs[0].Topics {
		for _, p := range rt.Partitions {
			if p.OffsetLag != 0 || p.IsFuture {
				t.Fatalf("%s-%d: lag %d, future %v on the leader", rt.Topic, p.Partition, p.OffsetLag, p.IsFuture)
			}
			out[fmt.Sprintf("%s-%d", rt.Topic, p.Partition)] = p.Size
		}
	}
	return out
}

// TestDescribeLogDirs: the log directory, its file system's space (v4),
// every partition or those asked for, with sizes that grow with what is
// produced.
func TestDescribeLogDirs(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "orders", 2)
	ts.createTopic(t, "logs", 1)
	ts.produce(t, "orders", 1, 3, 10, 100)
	for v := int16(0); v <= 4; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			resp := ts.call(t, logDirsRequest(v, nil)).(*kmsg.DescribeLogDirsResponse)
			if resp.ErrorCode != 0 || resp.Dirs[0].ErrorCode != 0 {
				t.Fatalf("errors %d, %d", resp.ErrorCode, resp.Dirs[0].ErrorCode)
			}
			d := resp.Dirs[0]
			if !filepath.IsAbs(d.Dir) || filepath.Base(d.Dir) != "topics" {
				t.Fatalf("log directory %q", d.Dir)
			}
			if v >= 4 && (d.TotalBytes <= 0 || d.UsableBytes < 0 || d.UsableBytes > d.TotalBytes) {
				t.Fatalf("total %d, usable %d bytes", d.TotalBytes, d.UsableBytes)
			}
			got := sizes(t, resp)
			if len(got) != 3 || got["orders-0"] != 0 || got["logs-0"] != 0 || got["orders-1"] < 3*10*100 {
				t.Fatalf("sizes %v", got)
			}
		})
	}
	p, _ := ts.parts.Get("orders", 1)
	before := p.Size()
	if before != p.Log().Size() || before <= 0 {
		t.Fatalf("size %d, the log says %d", before, p.Log().Size())
	}
	ts.produce(t, "orders", 1, 1, 10, 100)
	resp := ts.call(t, logDirsRequest(4, map[string][]int32{"orders": {1, 7}, "nope": {0}, "logs": {}})).(*kmsg.DescribeLogDirsResponse)
	if got := sizes(t, resp); len(got) != 1 || got["orders-1"] <= before {
		t.Fatalf("asked for orders-1 after a produce (was %d): %v", before, got)
	}
	// An empty list: the directory, no partitions.
	resp = ts.call(t, logDirsRequest(4, map[string][]int32{})).(*kmsg.DescribeLogDirsResponse)
	if got := sizes(t, resp); len(got) != 0 {
		t.Fatalf("an empty list: %v", got)
	}
}

// TestDescribeLogDirsAuthorization: DESCRIBE on the cluster; denied, no
// directories, and CLUSTER_AUTHORIZATION_FAILED where the version has a
// field for it (v3).
func TestDescribeLogDirsAuthorization(t *testing.T) {
	az := authz.New(authz.Config{SuperUsers: []string{admin}})
	meta := newFakeMeta(1)
	ts := newTestServerOver(t, Config{Authorizer: az, Metrics: NewMetrics(prometheus.NewRegistry())}, meta, meta)
	if _, err := meta.CreateTopic(cluster.Topic{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ts.replicas.Reconcile(); err != nil {
		t.Fatal(err)
	}
	for v := int16(0); v <= 4; v++ {
		resp := ts.callFrom(t, "10.0.0.7", "User:bob", logDirsRequest(v, nil)).(*kmsg.DescribeLogDirsResponse)
		if len(resp.Dirs) != 0 {
			t.Fatalf("v%d denied: %d directories", v, len(resp.Dirs))
		}
		if v >= 3 && resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
			t.Fatalf("v%d denied: error %d", v, resp.ErrorCode)
		}
	}
	resp := ts.callFrom(t, "10.0.0.7", admin, logDirsRequest(4, nil)).(*kmsg.DescribeLogDirsResponse)
	if got := sizes(t, resp); len(got) != 1 {
		t.Fatalf("super user: %v", got)
	}
}
