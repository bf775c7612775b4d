package server

// DescribeLogDirs (KIP-113): each broker answers for its own data: the log
// directory its partitions live in, that file system's size and free space
// (v4), and each partition replica hosted here with its size on disk and
// how far it is behind its leader. A broker has one log directory.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/authz"
)

func (s *Server) handleDescribeLogDirs(c *conn, r *kmsg.DescribeLogDirsRequest) *kmsg.DescribeLogDirsResponse {
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	if !s.authorize(c, "DescribeLogDirs", authz.OpDescribe, authz.ResourceCluster, clusterResource) {
		// As Kafka: no directories, and from v3 the error says why.
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	// want holds the partitions asked for; nil (Topics null): all.
	var want map[string]map[int32]bool
	if r.Topics != nil {
		want = map[string]map[int32]bool{}
		for _, t := range r.Topics {
			if want[t.Topic] == nil {
				want[t.Topic] = map[int32]bool{}
			}
			for _, p := range t.Partitions {
				want[t.Topic][p] = true
			}
		}
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = s.parts.LogDir()
	if total, usable, err := s.parts.LogDirSpace(); err == nil {
		dir.TotalBytes, dir.UsableBytes = total, usable
	} else {
		s.log.Warn("DescribeLogDirs: the log directory's space is unknown", "err", err)
	}
	dir.Topics = []kmsg.DescribeLogDirsResponseDirTopic{}
	for _, p := range s.parts.Partitions() { // ordered by topic, then index
		if want != nil && !want[p.Topic][p.Index] {
			continue
		}
		if n := len(dir.Topics); n == 0 || dir.Topics[n-1].Topic != p.Topic {
			rt := kmsg.NewDescribeLogDirsResponseDirTopic()
			rt.Topic = p.Topic
			dir.Topics = append(dir.Topics, rt)
		}
		rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		rp.Partition, rp.Size, rp.OffsetLag = p.Index, p.Size(), p.OffsetLag()
		rt := &dir.Topics[len(dir.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return resp
}
