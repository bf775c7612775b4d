package txns

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/coordinator/txns/txnlogfmt"
	"github.com/runnel-io/runnel/partition"
)

// State is a transaction's state, with Kafka's names and numbers.
type State = txnlogfmt.Status

// The states (see the package comment).
const (
	Empty             = txnlogfmt.Empty
	Ongoing           = txnlogfmt.Ongoing
	PrepareCommit     = txnlogfmt.PrepareCommit
	PrepareAbort      = txnlogfmt.PrepareAbort
	CompleteCommit    = txnlogfmt.CompleteCommit
	CompleteAbort     = txnlogfmt.CompleteAbort
	Dead              = txnlogfmt.Dead
	PrepareEpochFence = txnlogfmt.PrepareEpochFence
)

// maxEpoch is the highest producer epoch; an id whose epoch reaches
// exhaustedEpoch gets a new producer id at its next InitProducerId, as in
// Kafka, so that a fencing bump still has an epoch left.
const (
	maxEpoch       = 32767
	exhaustedEpoch = maxEpoch - 1
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Txn is a transactional id's state.
type Txn struct {
	ID             string
	ProducerID     int64
	PrevProducerID int64 // -1: none
	Epoch          int16
	Timeout        time.Duration
	State          State
	Partitions     []TopicPartition // sorted
	Start          time.Time        // of the open or last transaction; zero: none
	Update         time.Time
	// Coordinator is the partition of the topic that holds the id.
	Coordinator int32
}

// entry is one id's state in a shard.
type entry struct {
	t Txn
	// lastEpoch is the epoch before the last InitProducerId bump, so a
	// retried InitProducerId whose answer was lost gets the same answer
	// (KIP-360); -1: none. Memory only, as in Kafka.
	lastEpoch int16
	// busy: a change is being written, or the markers of a Prepare state
	// are; other requests get ErrConcurrentTransactions.
	busy bool
	// fresh: the id's first producer id is being handed out; it is not
	// listed until that is durable.
	fresh bool
}

// shard is one partition's transaction coordinator.
type shard struct {
	s      *Service
	w      *coordinator.Writer
	index  int32
	ctx    context.Context
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		ids  map[string]*entry
		done bool
	}
}

// Unload stops the shard's timers and marker writers; a newly loaded
// coordinator resumes what they had not finished.
func (sh *shard) Unload(error) {
	sh.mu.Lock()
	sh.mu.done = true
	sh.mu.Unlock()
	sh.cancel()
}

// loader rebuilds a partition's transactional ids from its records.
type loader struct {
	s       *Service
	index   int32
	ids     map[string]txnlogfmt.Value
	skipped int
}

func (s *Service) newLoader(index int32) coordinator.Loader {
	return &loader{s: s, index: index, ids: map[string]txnlogfmt.Value{}}
}

// Replay applies one record: the last value of an id wins, a tombstone
// removes it. Records that do not decode are skipped, as Kafka skips them.
func (l *loader) Replay(r coordinator.Record) error {
	id, err := txnlogfmt.DecodeKey(r.Key)
	var v txnlogfmt.Value
	var tomb bool
	if err == nil {
		v, tomb, err = txnlogfmt.DecodeValue(r.Value)
	}
	if err != nil {
		l.skipped++
		if l.skipped <= 10 {
			l.s.log.Warn("skipping a record of the transaction state topic", "partition", l.index, "offset", r.Offset, "err", err)
		}
		return nil
	}
	if tomb {
		delete(l.ids, id)
		return nil
	}
	l.ids[id] = v
	return nil
}

// Loaded starts the shard, and resumes the markers of every transaction
// left in a Prepare state.
func (l *loader) Loaded(w *coordinator.Writer) (coordinator.Shard, error) {
	sh := &shard{s: l.s, w: w, index: l.index}
	sh.ctx, sh.cancel = context.WithCancel(context.Background())
	sh.mu.ids = make(map[string]*entry, len(l.ids))
	var resume []Txn
	for id, v := range l.ids {
		e := &entry{t: fromValue(id, l.index, &v), lastEpoch: -1}
		if e.t.State == PrepareCommit || e.t.State == PrepareAbort {
			e.busy = true
			resume = append(resume, e.t)
		}
		sh.mu.ids[id] = e
	}
	for _, t := range resume {
		l.s.log.Info("resuming the markers of a transaction", "transactional_id", t.ID, "state", t.State.String(),
			"producer_id", t.ProducerID, "producer_epoch", t.Epoch)
		sh.goComplete(t)
	}
	sh.s.wg.Add(1)
	go func() {
		defer sh.s.wg.Done()
		sh.timers()
	}()
	return sh, nil
}

func fromValue(id string, index int32, v *txnlogfmt.Value) Txn {
	t := Txn{ID: id, ProducerID: v.ProducerID, PrevProducerID: v.PreviousProducerID, Epoch: v.ProducerEpoch,
		Timeout: time.Duration(v.TimeoutMs) * time.Millisecond, State: v.Status, Update: time.UnixMilli(v.LastUpdateMs),
		Coordinator: index}
	if v.StartMs >= 0 {
		t.Start = time.UnixMilli(v.StartMs)
	}
	for _, tp := range v.Partitions {
		for _, p := range tp.Partitions {
			t.Partitions = append(t.Partitions, TopicPartition{Topic: tp.Topic, Partition: p})
		}
	}
	sortPartitions(t.Partitions)
	return t
}

func toValue(t *Txn) txnlogfmt.Value {
	v := txnlogfmt.Value{ProducerID: t.ProducerID, PreviousProducerID: t.PrevProducerID, NextProducerID: -1,
		ProducerEpoch: t.Epoch, TimeoutMs: int32(t.Timeout / time.Millisecond), Status: t.State,
		LastUpdateMs: t.Update.UnixMilli(), StartMs: -1}
	if !t.Start.IsZero() {
		v.StartMs = t.Start.UnixMilli()
	}
	if t.State != Empty {
		v.Partitions = []txnlogfmt.TopicPartitions{}
		for _, tp := range t.Partitions {
			if n := len(v.Partitions); n == 0 || v.Partitions[n-1].Topic != tp.Topic {
				v.Partitions = append(v.Partitions, txnlogfmt.TopicPartitions{Topic: tp.Topic})
			}
			last := &v.Partitions[len(v.Partitions)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
	}
	return v
}

func sortPartitions(ps []TopicPartition) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Topic != ps[j].Topic {
			return ps[i].Topic < ps[j].Topic
		}
		return ps[i].Partition < ps[j].Partition
	})
}

// persist appends t's record, or the id's tombstone, and waits until it is
// durable.
func (sh *shard) persist(t *Txn, tombstone bool) error {
	k, err := txnlogfmt.AppendKey(nil, t.ID)
	if err != nil {
		return errors.Join(coordinator.ErrRecordTooLarge, err)
	}
	rec := coordinator.Record{Key: k, Timestamp: t.Update.UnixMilli()}
	if !tombstone {
		v := toValue(t)
		if rec.Value, err = txnlogfmt.AppendValue(nil, &v); err != nil {
			return errors.Join(coordinator.ErrRecordTooLarge, err)
		}
	}
	wait, err := sh.w.Append([]coordinator.Record{rec})
	if err != nil {
		return err
	}
	return wait()
}

// lookupLocked returns the id's entry, or the error of a request for it.
func (sh *shard) lookupLocked(id string, producerID int64) (*entry, error) {
	if sh.mu.done {
		return nil, coordinator.ErrNotCoordinator
	}
	e := sh.mu.ids[id]
	if e == nil || e.fresh || e.t.ProducerID != producerID {
		return nil, ErrInvalidProducerIDMapping
	}
	return e, nil
}

// change writes next as e's state, e being busy (set by the caller under
// the lock); busy is cleared afterwards unless keepBusy.
func (sh *shard) change(e *entry, next Txn, keepBusy bool) error {
	err := sh.persist(&next, false)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err != nil {
		e.busy = false
		return err
	}
	e.t = next
	e.busy = keepBusy
	return nil
}

func (sh *shard) initProducerID(id string, timeout time.Duration, producerID int64, epoch int16) (int64, int16, error) {
	now := sh.s.o.Now()
	sh.mu.Lock()
	if sh.mu.done {
		sh.mu.Unlock()
		return -1, -1, coordinator.ErrNotCoordinator
	}
	e := sh.mu.ids[id]
	if e == nil {
		e = &entry{t: Txn{ID: id, ProducerID: -1, PrevProducerID: -1, Epoch: -1, Coordinator: sh.index}, lastEpoch: -1, busy: true, fresh: true}
		sh.mu.ids[id] = e
		sh.mu.Unlock()
		pid, err := sh.s.o.AllocateProducerID()
		next := Txn{ID: id, ProducerID: pid, PrevProducerID: -1, Epoch: 0, Timeout: timeout, State: Empty, Update: now, Coordinator: sh.index}
		if err == nil {
			err = sh.persist(&next, false)
		}
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if err != nil {
			if sh.mu.ids[id] == e {
				delete(sh.mu.ids, id)
			}
			return -1, -1, err
		}
		e.t, e.busy, e.fresh = next, false, false
		return pid, 0, nil
	}
	t := e.t
	if e.busy {
		sh.mu.Unlock()
		return -1, -1, ErrConcurrentTransactions
	}
	if producerID >= 0 && !(producerID == t.ProducerID || (producerID == t.PrevProducerID && epoch >= exhaustedEpoch)) {
		sh.mu.Unlock()
		return -1, -1, ErrProducerFenced
	}
	switch t.State {
	case Ongoing:
		// The producer that opened it is fenced: the transaction is
		// aborted under a bumped epoch, and the client asks again.
		next := sh.fenceLocked(e, now)
		sh.mu.Unlock()
		if err := sh.prepare(e, next); err != nil {
			return -1, -1, err
		}
		return -1, -1, ErrConcurrentTransactions
	case Empty, CompleteCommit, CompleteAbort:
	default:
		sh.mu.Unlock()
		return -1, -1, ErrConcurrentTransactions
	}
	if producerID >= 0 && producerID == t.ProducerID && epoch != t.Epoch {
		sh.mu.Unlock()
		if epoch == e.lastEpoch {
			return t.ProducerID, t.Epoch, nil // a retry of the bump that made this epoch
		}
		return -1, -1, ErrProducerFenced
	}
	if producerID >= 0 && producerID != t.ProducerID {
		sh.mu.Unlock()
		return t.ProducerID, t.Epoch, nil // a retry of the rotation to the new id
	}
	e.busy = true
	sh.mu.Unlock()
	next := t
	next.State, next.Timeout, next.Partitions, next.Update = Empty, timeout, nil, now
	if t.Epoch >= exhaustedEpoch {
		pid, err := sh.s.o.AllocateProducerID()
		if err != nil {
			sh.mu.Lock()
			e.busy = false
			sh.mu.Unlock()
			return -1, -1, err
		}
		next.PrevProducerID, next.ProducerID, next.Epoch = t.ProducerID, pid, 0
	} else {
		next.Epoch = t.Epoch + 1
	}
	if err := sh.change(e, next, false); err != nil {
		return -1, -1, err
	}
	sh.mu.Lock()
	e.lastEpoch = t.Epoch
	if next.ProducerID != t.ProducerID {
		e.lastEpoch = -1
	}
	sh.mu.Unlock()
	return next.ProducerID, next.Epoch, nil
}

// fenceLocked makes e busy and returns the PrepareAbort of its open
// transaction under a bumped epoch, which fences the producer that opened
// it (Kafka's PrepareEpochFence, kept in memory only).
func (sh *shard) fenceLocked(e *entry, now time.Time) Txn {
	e.busy = true
	e.t.State = PrepareEpochFence
	next := e.t
	if next.Epoch < maxEpoch {
		next.Epoch++
	}
	next.State, next.Update = PrepareAbort, now
	return next
}

// prepare writes next, a Prepare state, and starts its markers; e is busy
// until the Complete state is written.
func (sh *shard) prepare(e *entry, next Txn) error {
	err := sh.persist(&next, false)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err != nil {
		if e.t.State == PrepareEpochFence {
			e.t.State = Ongoing
		}
		e.busy = false
		return err
	}
	e.t = next
	sh.goComplete(next)
	return nil
}

func (sh *shard) addPartitions(id string, producerID int64, epoch int16, parts []TopicPartition) error {
	now := sh.s.o.Now()
	sh.mu.Lock()
	e, err := sh.lookupLocked(id, producerID)
	switch {
	case err != nil:
	case e.t.Epoch != epoch:
		err = ErrProducerFenced
	case e.busy:
		err = ErrConcurrentTransactions
	case e.t.State != Ongoing && e.t.State != Empty && e.t.State != CompleteCommit && e.t.State != CompleteAbort:
		err = ErrConcurrentTransactions
	}
	if err != nil {
		sh.mu.Unlock()
		return err
	}
	next := e.t
	if next.State != Ongoing {
		next.Partitions, next.Start = nil, now
	}
	have := make(map[TopicPartition]bool, len(next.Partitions))
	for _, tp := range next.Partitions {
		have[tp] = true
	}
	added := append([]TopicPartition(nil), next.Partitions...)
	for _, tp := range parts {
		if !have[tp] {
			have[tp] = true
			added = append(added, tp)
		}
	}
	if next.State == Ongoing && len(added) == len(next.Partitions) {
		sh.mu.Unlock()
		return nil // every partition is in the transaction already
	}
	sortPartitions(added)
	next.Partitions, next.State, next.Update = added, Ongoing, now
	e.busy = true
	sh.mu.Unlock()
	return sh.change(e, next, false)
}

func (sh *shard) verifyPartitions(id string, producerID int64, epoch int16, parts []TopicPartition) ([]error, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, err := sh.lookupLocked(id, producerID)
	switch {
	case err != nil:
		return nil, err
	case e.t.Epoch != epoch:
		return nil, ErrProducerFenced
	case e.t.State == PrepareCommit || e.t.State == PrepareAbort || e.t.State == PrepareEpochFence:
		return nil, ErrConcurrentTransactions
	}
	have := make(map[TopicPartition]bool, len(e.t.Partitions))
	for _, tp := range e.t.Partitions {
		have[tp] = true
	}
	errs := make([]error, len(parts))
	for i, tp := range parts {
		if e.t.State != Ongoing || !have[tp] {
			errs[i] = ErrInvalidTxnState
		}
	}
	return errs, nil
}

func (sh *shard) endTxn(id string, producerID int64, epoch int16, commit bool) error {
	now := sh.s.o.Now()
	sh.mu.Lock()
	e, err := sh.lookupLocked(id, producerID)
	if err != nil {
		sh.mu.Unlock()
		return err
	}
	t := e.t
	want := CompleteAbort
	if commit {
		want = CompleteCommit
	}
	switch {
	case t.Epoch != epoch:
		err = ErrProducerFenced
	case t.State == CompleteCommit || t.State == CompleteAbort:
		if t.State != want {
			err = ErrInvalidTxnState
		}
	case t.State == PrepareCommit || t.State == PrepareAbort:
		err = ErrConcurrentTransactions // a retry while the markers are written
		if (t.State == PrepareCommit) != commit {
			err = ErrInvalidTxnState
		}
	case e.busy:
		err = ErrConcurrentTransactions
	case t.State == Empty:
		err = ErrInvalidTxnState
	case t.State != Ongoing:
		err = ErrConcurrentTransactions
	}
	if err != nil || t.State != Ongoing {
		sh.mu.Unlock()
		return err
	}
	e.busy = true
	sh.mu.Unlock()
	next := t
	next.State, next.Update = PrepareAbort, now
	if commit {
		next.State = PrepareCommit
	}
	return sh.prepare(e, next)
}

// goComplete writes the markers of prep, a Prepare state, and then its
// Complete state, on a goroutine that ends with the shard.
func (sh *shard) goComplete(prep Txn) {
	sh.s.wg.Add(1)
	go func() {
		defer sh.s.wg.Done()
		sh.complete(prep)
	}()
}

func (sh *shard) complete(prep Txn) {
	commit := prep.State == PrepareCommit
	m := Marker{ProducerID: prep.ProducerID, ProducerEpoch: prep.Epoch, CoordinatorEpoch: sh.w.LeaderEpoch(),
		Commit: commit, Partitions: prep.Partitions}
	log := sh.s.log.With("transactional_id", prep.ID, "producer_id", prep.ProducerID, "producer_epoch", prep.Epoch, "commit", commit)
	for attempt := 0; len(m.Partitions) > 0; attempt++ {
		if sh.ctx.Err() != nil {
			return // unloaded: the next coordinator resumes
		}
		errs := sh.s.markers.WriteMarkers(sh.ctx, m)
		var again []TopicPartition
		for i, err := range errs {
			switch {
			case err == nil:
			case errors.Is(err, partition.ErrCoordinatorFenced):
				log.Warn("a newer coordinator wrote markers for this producer; giving the transaction up", "topic",
					m.Partitions[i].Topic, "partition", m.Partitions[i].Partition, "err", err)
				return
			case errors.Is(err, partition.ErrProducerFenced):
				// The partition has seen a newer epoch of the producer:
				// this transaction ended there already.
				log.Warn("marker refused for an older producer epoch; the partition moved past this transaction",
					"topic", m.Partitions[i].Topic, "partition", m.Partitions[i].Partition, "err", err)
			default:
				again = append(again, m.Partitions[i])
				sh.s.markerRetries.Add(1)
				if attempt%50 == 0 {
					log.Info("transaction marker not written; retrying", "topic", m.Partitions[i].Topic,
						"partition", m.Partitions[i].Partition, "attempt", attempt, "err", err)
				}
			}
		}
		m.Partitions = again
		if len(again) > 0 && !sh.sleep(sh.s.o.MarkerRetry) {
			return
		}
	}
	next := prep
	next.State, next.Partitions, next.Update = CompleteAbort, nil, sh.s.o.Now()
	if commit {
		next.State = CompleteCommit
	}
	for {
		err := sh.persist(&next, false)
		if err == nil {
			break
		}
		if errors.Is(err, coordinator.ErrNotCoordinator) || sh.ctx.Err() != nil {
			return // reloaded or moved: the shard that loads next resumes
		}
		log.Warn("writing the end of a transaction failed; retrying", "err", err)
		if !sh.sleep(sh.s.o.MarkerRetry) {
			return
		}
	}
	sh.mu.Lock()
	if e := sh.mu.ids[prep.ID]; e != nil && e.t.ProducerID == prep.ProducerID {
		e.t, e.busy = next, false
	}
	sh.mu.Unlock()
}

// sleep waits d, or returns false when the shard ends first.
func (sh *shard) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-sh.ctx.Done():
		return false
	}
}

// timers aborts the transactions open for longer than their timeout and
// removes the ids idle for longer than the expiration, every
// CheckInterval, until the shard ends.
func (sh *shard) timers() {
	tick := time.NewTicker(sh.s.o.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-sh.ctx.Done():
			return
		case <-tick.C:
			sh.expire()
		}
	}
}

// expire runs one pass of timers.
func (sh *shard) expire() {
	now := sh.s.o.Now()
	type fence struct {
		e    *entry
		next Txn
	}
	var fences []fence
	var idle []*entry
	sh.mu.Lock()
	if sh.mu.done {
		sh.mu.Unlock()
		return
	}
	for _, e := range sh.mu.ids {
		switch {
		case e.busy || e.fresh:
		case e.t.State == Ongoing && now.Sub(e.t.Start) > e.t.Timeout:
			fences = append(fences, fence{e, sh.fenceLocked(e, now)})
		case (e.t.State == Empty || e.t.State == CompleteCommit || e.t.State == CompleteAbort) &&
			now.Sub(e.t.Update) > sh.s.o.IDExpiration:
			e.busy = true
			idle = append(idle, e)
		}
	}
	sh.mu.Unlock()
	for _, f := range fences {
		sh.s.log.Info("aborting a transaction past its timeout", "transactional_id", f.next.ID,
			"producer_id", f.next.ProducerID, "timeout", f.next.Timeout, "started", f.e.t.Start)
		if err := sh.prepare(f.e, f.next); err != nil {
			sh.s.log.Warn("aborting a transaction past its timeout failed; trying again later", "transactional_id", f.next.ID, "err", err)
			continue
		}
		sh.s.timedOut.Add(1)
	}
	for _, e := range idle {
		t := e.t
		t.Update = now
		err := sh.persist(&t, true)
		sh.mu.Lock()
		if err == nil {
			if sh.mu.ids[t.ID] == e {
				delete(sh.mu.ids, t.ID)
			}
		} else {
			e.busy = false
		}
		sh.mu.Unlock()
		if err == nil {
			sh.s.expired.Add(1)
			sh.s.log.Info("removed an expired transactional id", "transactional_id", t.ID, "idle_since", e.t.Update)
		}
	}
}

func (sh *shard) describe(id string) (Txn, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.mu.done {
		return Txn{}, coordinator.ErrNotCoordinator
	}
	e := sh.mu.ids[id]
	if e == nil || e.fresh {
		return Txn{}, ErrUnknownID
	}
	return copyTxn(e.t), nil
}

func (sh *shard) list() []Txn {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]Txn, 0, len(sh.mu.ids))
	for _, e := range sh.mu.ids {
		if !e.fresh {
			out = append(out, copyTxn(e.t))
		}
	}
	return out
}

func copyTxn(t Txn) Txn {
	t.Partitions = append([]TopicPartition(nil), t.Partitions...)
	return t
}
