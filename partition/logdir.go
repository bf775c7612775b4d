package partition

// What DescribeLogDirs reports of the partitions a broker hosts: the log
// directory they live in, its file system's size and free space, and each
// replica's bytes on disk and how far it is behind its leader.

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LogDir returns the absolute path of the directory the partitions' folders
// are in (DataDir/topics), Kafka's log directory.
func (m *Manager) LogDir() string {
	if abs, err := filepath.Abs(m.topics); err == nil {
		return abs
	}
	return m.topics
}

// LogDirSpace returns the size in bytes of the log directory's file system
// and the bytes of it available to the broker (statfs f_blocks and
// f_bavail, in fragments).
func (m *Manager) LogDirSpace() (total, usable int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(m.topics, &st); err != nil {
		return -1, -1, fmt.Errorf("partition: statfs of the log directory %s: %w", m.topics, err)
	}
	unit := st.Frsize
	if unit <= 0 {
		unit = st.Bsize
	}
	return int64(st.Blocks) * unit, int64(st.Bavail) * unit, nil
}

// Size returns the bytes of the partition's log on disk: the whole batches
// of its segments.
func (p *Partition) Size() int64 { return p.log.Size() }

// OffsetLag returns how many offsets this replica is behind its leader:
// 0 on the leader, and on a follower the leader's high watermark at its
// last fetch less this replica's log end, never below 0.
func (p *Partition) OffsetLag() int64 {
	if p.Role().Leader {
		return 0
	}
	return max(p.leaderHW.Load()-p.log.LogEndOffset(), 0)
}
