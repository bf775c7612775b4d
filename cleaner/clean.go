package cleaner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// clean runs one pass over p (see the package comment). p is marked busy
// by the caller, so no other pass runs on it meanwhile. more reports that
// the key map filled before the end of the dirty section.
func (c *Cleaner) clean(ctx context.Context, p *partition.Partition, force bool) (more bool, err error) {
	start := time.Now()
	defer func() { c.stats.Nanos.Add(int64(time.Since(start))) }()
	st := c.state(p)
	l := p.Log()
	cfg := p.Config()
	segs := l.SealedSegments()
	defer release(segs)
	ck := c.loadCheckpoint(p, st)
	now := c.opts.Now()
	d, err := c.measure(p, l, segs, ck, now)
	if err != nil {
		return false, err
	}
	if !d.cleanable(cfg, now, force) {
		return false, nil
	}
	ck = d.ck
	pass := &pass{c: c, ctx: ctx, part: p, l: l, cfg: cfg, now: now, ck: ck, maxInflate: c.opts.MaxDecompressedBatchBytes,
		txnRead: map[int64]bool{}}
	list, err := p.AbortedTransactions(nil, d.clean, p.LastStableOffset())
	if err != nil {
		return false, err
	}
	pass.aborted = map[int64][]partition.AbortedTxn{}
	for _, a := range list {
		pass.aborted[a.ProducerID] = append(pass.aborted[a.ProducerID], a)
	}
	if err := pass.buildMap(segs, d); err != nil {
		return false, err
	}
	if d.to > d.from {
		more = pass.mapEnd < segs[d.to-1].NextOffset()
	}
	if err := pass.findProducerLasts(); err != nil {
		return false, err
	}
	for _, s := range segs {
		if s.Base() >= pass.mapEnd {
			break
		}
		if err := pass.rewrite(s); err != nil {
			if errors.Is(err, segment.ErrRewriteStale) {
				// Retention or a truncation took the segment: the
				// next pass starts from what the log holds then.
				return false, nil
			}
			return false, err
		}
	}
	// The segments as they are now (those rewritten are new ones).
	sizes := map[int64]int64{}
	for _, s := range l.Segments() {
		sizes[s.Base()] = s.Size()
	}
	next := checkpoint{cleanOffset: max(d.clean, pass.mapEnd), cleaned: map[int64]cleanedSeg{}}
	for _, s := range segs {
		size, ok := sizes[s.Base()]
		if !ok || s.Base() >= pass.mapEnd {
			continue
		}
		ms := now.UnixMilli()
		if cs, ok := ck.cleaned[s.Base()]; ok {
			ms = cs.ms
		}
		next.cleaned[s.Base()] = cleanedSeg{ms: ms, size: size}
	}
	if err := c.storeCheckpoint(p, st, next); err != nil {
		return false, err
	}
	c.stats.Cleans.Add(1)
	c.stats.LastRunUnixMs.Store(time.Now().UnixMilli())
	if pass.before > 0 {
		c.stats.LastRatio.Store(math.Float64bits(float64(pass.after) / float64(pass.before)))
	}
	c.log.Debug("log cleaner: cleaned", "partition", partition.Name(p.Topic, p.Index),
		"dirty_ratio", d.ratio, "map_end", pass.mapEnd, "keys", pass.om.len(),
		"segments_rewritten", pass.rewritten, "bytes_before", pass.before, "bytes_after", pass.after,
		"records_removed", pass.removed, "took", time.Since(start))
	return more, nil
}

// pass is one clean of one partition.
type pass struct {
	c          *Cleaner
	ctx        context.Context
	part       *partition.Partition
	l          *segment.Log
	cfg        partition.Config
	now        time.Time
	ck         checkpoint
	maxInflate int64

	om     *offsetMap
	mapEnd int64 // the map covers the dirty section below this offset
	// lasts holds the base offset of each idempotent producer's last
	// batch below mapEnd: that batch stays, empty if need be.
	lasts map[int64]int64
	// aborted holds the aborted transactions of the dirty section, by
	// producer: their records go into no key map, so that they never
	// make a committed record of the same key go.
	aborted map[int64][]partition.AbortedTxn
	// txnRead holds the producers of which the rewrite has read a
	// transactional batch since their last marker: that marker's
	// transaction still has batches in the log, and it stays.
	txnRead map[int64]bool
	// markersGone are the offsets of the markers the current segment's
	// rewrite removes.
	markersGone []int64

	buf     []byte // batch bytes read
	out     []byte // a batch built
	arena   []byte // kept records' bytes, per batch
	kept    []keptRecord
	hspans  [][2]span // kept records' headers: key and value
	headers []segment.RecordHeader
	recs    []segment.Record

	rewritten     int
	before, after int64
	removed       int64
}

// keptRecord locates a kept record's fields in the arena.
type keptRecord struct {
	offset, timestamp int64
	key, value        span
	headers           [2]int // range in pass.hspans
}

// span is a slice of the arena; off -1 is nil.
type span struct{ off, n int }

func (p *pass) hold(b []byte) span {
	if b == nil {
		return span{-1, 0}
	}
	off := len(p.arena)
	p.arena = append(p.arena, b...)
	return span{off, len(b)}
}

func (p *pass) bytesOf(s span) []byte {
	if s.off < 0 {
		return nil
	}
	return p.arena[s.off : s.off+s.n : s.off+s.n]
}

// buildMap reads the dirty section, segments [d.from, d.to), into the key
// map until it is full, and sets mapEnd.
func (p *pass) buildMap(segs []*segment.Segment, d dirty) error {
	p.om = newOffsetMap(p.c.opts.DedupeBufferBytes / int64(p.c.opts.Threads))
	p.mapEnd = d.clean
	full := false
	for i := d.from; i < d.to && !full; i++ {
		s := segs[i]
		var err error
		p.buf, err = s.ReadBatches(p.buf, func(h *segment.Header, b []byte) (bool, error) {
			if h.NextOffset() <= d.clean {
				return true, nil // the clean part of a partly cleaned segment
			}
			if p.om.len() > 0 && !p.om.room(int(h.RecordCount)) {
				full = true
				return false, nil
			}
			if err := p.c.io.wait(p.ctx, int64(len(b))); err != nil {
				return false, err
			}
			p.c.stats.BytesRead.Add(int64(len(b)))
			if !h.IsControl() && !p.isAborted(h) {
				err := segment.ForEachRecord(b, h, p.maxInflate, func(r *segment.Record) error {
					if r.Key != nil {
						p.om.set(r.Key, r.Offset)
					}
					return nil
				})
				if err != nil {
					return false, fmt.Errorf("cleaner: %s: batch at %d: %w", s.Path(), h.BaseOffset, err)
				}
			}
			p.mapEnd = h.NextOffset()
			return true, nil
		})
		if err != nil {
			return err
		}
		if !full {
			p.mapEnd = max(p.mapEnd, s.NextOffset())
		}
	}
	return nil
}

// isAborted reports whether a batch belongs to an aborted transaction.
func (p *pass) isAborted(h *segment.Header) bool {
	if !h.IsTransactional() {
		return false
	}
	for _, a := range p.aborted[h.ProducerID] {
		if h.BaseOffset >= a.FirstOffset && h.BaseOffset < a.LastOffset {
			return true
		}
	}
	return false
}

// findProducerLasts walks the batch headers below mapEnd for the last
// batch of each idempotent producer.
func (p *pass) findProducerLasts() error {
	p.lasts = map[int64]int64{}
	return p.l.WalkHeaders(p.l.LogStartOffset(), func(h *segment.Header) bool {
		if h.BaseOffset >= p.mapEnd {
			return false
		}
		if h.ProducerID >= 0 && !h.IsControl() {
			p.lasts[h.ProducerID] = h.BaseOffset
		}
		return true
	})
}

// rewrite cleans one sealed segment below mapEnd. A segment from which
// nothing goes is left in place.
func (p *pass) rewrite(s *segment.Segment) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	cs, cleaned := p.ck.cleaned[s.Base()]
	dropTombstones := cleaned && p.now.UnixMilli()-cs.ms >= p.cfg.DeleteRetentionMs
	rw, err := p.l.BeginRewrite(s)
	if err != nil {
		return err
	}
	defer rw.Abort()
	p.markersGone = p.markersGone[:0]
	removed := int64(0)
	changed := false
	p.buf, err = s.ReadBatches(p.buf, func(h *segment.Header, b []byte) (bool, error) {
		if err := p.c.io.wait(p.ctx, int64(len(b))); err != nil {
			return false, err
		}
		p.c.stats.BytesRead.Add(int64(len(b)))
		// The segment's last batch stays, empty if need be, so the
		// segment still ends where the next begins: a follower whose
		// log ends inside the segment fetches up to the next one.
		last := h.NextOffset() >= s.NextOffset()
		out, n, err := p.cleanBatch(h, b, dropTombstones, last)
		if err != nil {
			return false, fmt.Errorf("cleaner: %s: batch at %d: %w", s.Path(), h.BaseOffset, err)
		}
		if out == nil {
			removed += n
			changed = true
			return true, nil
		}
		if err := p.c.io.wait(p.ctx, int64(len(out))); err != nil {
			return false, err
		}
		err = rw.Append(out)
		if errors.Is(err, segment.ErrBatchTooLarge) && len(out) > len(b) {
			// Rebuilt batches that compress worse than their originals
			// filled the new file: keep this one as it was.
			out, n, err = b, 0, rw.Append(b)
		}
		removed += n
		if n > 0 {
			changed = true
		}
		p.c.stats.BytesWritten.Add(int64(len(out)))
		return true, err
	})
	if err != nil {
		return err
	}
	if !changed {
		return nil // rw.Abort drops the copy
	}
	size := rw.Size()
	if err := p.part.ForgetAborted(p.markersGone); err != nil {
		return err
	}
	if err := rw.Install(); err != nil {
		return err
	}
	p.c.stats.MarkersRemoved.Add(int64(len(p.markersGone)))
	p.rewritten++
	p.before += s.Size()
	p.after += size
	p.removed += removed
	p.c.stats.Segments.Add(1)
	p.c.stats.BytesCleaned.Add(s.Size())
	p.c.stats.BytesAfter.Add(size)
	p.c.stats.RecordsRemoved.Add(removed)
	return nil
}

// cleanBatch returns what is left of batch b: b itself when every record
// stays, nil when the batch goes, or a rebuilt batch; and how many records
// went. keep keeps the batch, empty if need be.
func (p *pass) cleanBatch(h *segment.Header, b []byte, dropTombstones, keep bool) ([]byte, int64, error) {
	if h.IsControl() {
		// A marker goes once no batch of its transaction is left (none
		// was read since the producer's previous marker) and its
		// segment is past delete.retention.ms, as Kafka's cleaner
		// removes markers; a segment's last batch stays.
		read := p.txnRead[h.ProducerID]
		delete(p.txnRead, h.ProducerID)
		if !read && dropTombstones && !keep && h.BaseOffset < p.mapEnd {
			p.markersGone = append(p.markersGone, h.BaseOffset)
			return nil, 0, nil
		}
		return b, 0, nil
	}
	if h.IsTransactional() && h.ProducerID >= 0 {
		p.txnRead[h.ProducerID] = true
	}
	if h.BaseOffset >= p.mapEnd {
		return b, 0, nil
	}
	p.arena, p.kept, p.hspans = p.arena[:0], p.kept[:0], p.hspans[:0]
	total := int64(0)
	aborted := p.isAborted(h) // its records go, as Kafka's cleaner removes them
	err := segment.ForEachRecord(b, h, p.maxInflate, func(r *segment.Record) error {
		total++
		if aborted {
			return nil
		}
		if r.Key != nil {
			if latest, ok := p.om.latest(r.Key); ok && r.Offset < latest {
				return nil // a later record of the key is in the dirty section
			}
		}
		if r.Value == nil && dropTombstones && r.Key != nil {
			return nil // a tombstone past delete.retention.ms
		}
		k := keptRecord{offset: r.Offset, timestamp: r.Timestamp, key: p.hold(r.Key), value: p.hold(r.Value)}
		k.headers[0] = len(p.hspans)
		for _, hd := range r.Headers {
			p.hspans = append(p.hspans, [2]span{p.hold(hd.Key), p.hold(hd.Value)})
		}
		k.headers[1] = len(p.hspans)
		p.kept = append(p.kept, k)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	removed := total - int64(len(p.kept))
	if removed == 0 {
		return b, 0, nil
	}
	if len(p.kept) == 0 && !keep {
		if last, ok := p.lasts[h.ProducerID]; !ok || h.ProducerID < 0 || last != h.BaseOffset {
			return nil, removed, nil
		}
	}
	// The arena is final now: turn spans into slices.
	p.recs, p.headers = p.recs[:0], p.headers[:0]
	for _, hs := range p.hspans {
		p.headers = append(p.headers, segment.RecordHeader{Key: p.bytesOf(hs[0]), Value: p.bytesOf(hs[1])})
	}
	for _, k := range p.kept {
		var hs []segment.RecordHeader
		if k.headers[1] > k.headers[0] {
			hs = p.headers[k.headers[0]:k.headers[1]:k.headers[1]]
		}
		p.recs = append(p.recs, segment.Record{Offset: k.offset, Timestamp: k.timestamp,
			Key: p.bytesOf(k.key), Value: p.bytesOf(k.value), Headers: hs})
	}
	spec := segment.BatchSpec{
		BaseOffset:           h.BaseOffset,
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		Attributes:           h.Attributes,
		LastOffsetDelta:      h.LastOffsetDelta,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		BaseSequence:         h.BaseSequence,
		FirstTimestamp:       h.BaseTimestamp,
		MaxTimestamp:         h.MaxTimestamp,
	}
	out, err := segment.BuildBatch(p.out[:0], spec, p.recs)
	if err != nil {
		return nil, 0, err
	}
	p.out = out
	return out, removed, nil
}
