package server

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/partition"
)

func (s *Server) handleListOffsets(c *conn, r *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := kmsg.NewPtrListOffsetsResponse()
	for _, rt := range r.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		allowed := s.authorize(c, "ListOffsets", authz.OpDescribe, authz.ResourceTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			var p *partition.Partition
			err := error(kerr.TopicAuthorizationFailed)
			if allowed {
				p, err = s.leaderPartition(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
			} else if r.Version == 0 {
				sp.OldStyleOffsets, err = oldStyleOffsets(p, rp.Timestamp, rp.MaxNumOffsets)
				sp.ErrorCode = errorCode(err)
			} else {
				sp.LeaderEpoch = p.Role().Epoch
				switch rp.Timestamp {
				case -1: // latest: for read_committed, the last stable offset
					sp.Offset = p.HighWatermark()
					if r.IsolationLevel == 1 {
						sp.Offset = p.LastStableOffset()
					}
				case -2: // earliest
					sp.Offset = p.LogStartOffset()
				case -3, -4, -5:
					err := listSpecial(p, rp.Timestamp, r.IsolationLevel, &sp)
					sp.ErrorCode = errorCode(err)
				default:
					if rp.Timestamp < 0 {
						sp.ErrorCode = kerr.UnsupportedVersion.Code
						break
					}
					off, ts, found, err := p.OffsetForTimestamp(rp.Timestamp)
					switch {
					case err != nil:
						sp.ErrorCode = errorCode(err)
					case found && r.IsolationLevel == 1 && off >= p.LastStableOffset():
						// read_committed finds nothing past the LSO, as in Kafka
					case found:
						sp.Offset, sp.Timestamp = off, ts
					}
				}
			}
			s.m.errorCode("ListOffsets", sp.ErrorCode)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// The special timestamps past -1 (latest) and -2 (earliest) came with
// ListOffsets versions: -3 the record with the largest timestamp (v7,
// KIP-734), -4 the earliest local offset (v8, KIP-405), -5 the latest offset
// in tiered storage (v9, KIP-1005). As in Kafka, the versions bind the
// clients, which do not send them to a broker without those versions; the
// broker answers them at any version from 1 (librdkafka's
// offsets_for_times sends -3 at v1-v5).

// listSpecial answers the timestamps -3, -4 and -5 for a partition, as a
// Kafka broker without tiered storage does: -4 is the log start (every
// offset is local), and -5 finds nothing (offset, timestamp and epoch -1),
// no offset being in tiered storage. -3 is the first record with the log's
// largest timestamp, with its batch's leader epoch; nothing when that
// record is not yet below the high watermark (the last stable offset for
// read_committed), as in Kafka.
func listSpecial(p *partition.Partition, ts int64, isolation int8, sp *kmsg.ListOffsetsResponseTopicPartition) error {
	switch ts {
	case -3:
		limit := p.HighWatermark()
		if isolation == 1 {
			limit = p.LastStableOffset()
		}
		off, rts, epoch, found, err := p.MaxTimestamp(limit)
		if err != nil || !found {
			sp.LeaderEpoch = -1
			return err
		}
		sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, rts, epoch
	case -4:
		sp.Offset = p.LogStartOffset()
	case -5:
		sp.LeaderEpoch = -1
	}
	return nil
}

// oldStyleOffsets answers one partition of ListOffsets v0, which asks for
// up to max offsets "before" a time. Kafka answered with the base offsets
// of the segments last modified before it, newest first, led by the log
// end; runnel answers with one offset at most: the high watermark for -1
// (latest), the log start for -2 (earliest), and for a time the first
// offset whose record is at or after it (the high watermark if there is
// none), the finer form of the same answer. Other negative times find
// nothing, as in Kafka, and so does a max of 0 or below.
func oldStyleOffsets(p *partition.Partition, ts int64, max int32) ([]int64, error) {
	switch {
	case max <= 0:
		return []int64{}, nil
	case ts == -1:
		return []int64{p.HighWatermark()}, nil
	case ts == -2:
		return []int64{p.LogStartOffset()}, nil
	case ts < 0:
		return []int64{}, nil
	}
	off, _, found, err := p.OffsetForTimestamp(ts)
	switch {
	case err != nil:
		return []int64{}, err
	case !found:
		return []int64{p.HighWatermark()}, nil
	}
	return []int64{off}, nil
}

func (s *Server) handleDeleteRecords(c *conn, r *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteRecordsResponse()
	for _, rt := range r.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		allowed := s.authorize(c, "DeleteRecords", authz.OpDelete, authz.ResourceTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			var p *partition.Partition
			err := error(kerr.TopicAuthorizationFailed)
			if allowed {
				p, err = s.leaderPartition(rt.Topic, rp.Partition, -1)
			}
			if err == nil {
				sp.LowWatermark, err = p.DeleteRecords(rp.Offset)
			}
			sp.ErrorCode = errorCode(err)
			if err != nil {
				s.log.Info("delete records refused", "topic", rt.Topic, "partition", rp.Partition, "offset", rp.Offset, "err", err)
			}
			s.m.errorCode("DeleteRecords", sp.ErrorCode)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
