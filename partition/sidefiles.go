package partition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/runnel-io/runnel/cluster"
)

// The formats of the JSON side files of a partition folder (on-disk
// format; never change silently). Each file is one of the types below,
// which exist for nothing else: the producer table and the epoch history
// in memory are free to change, these are not. testdata/v1 holds the exact
// bytes the code writes for a fixed history and testdata/v0 those written
// before the files had versions, which still read; docs/format.md
// describes them and format_doc_test.go keeps it honest.
//
// A file of a version newer than the code knows is errSideFileVersion:
// producers.json is a cache and is rebuilt from the log; leader-epochs.json
// keeps the partition from opening until it is removed (and then rebuilt
// from the batch headers).

// sideFileVersion is the version of leader-epochs.json this code writes.
const sideFileVersion = 1

// producersFileVersion is the version of producers.json this code writes;
// versions 0 and 1 still read (as producers without transactions).
const producersFileVersion = 2

// errSideFileVersion: a side file of a version this code does not read.
var errSideFileVersion = errors.New("unknown format version")

// producersV2 is producers.json, version 2: the idempotent producers of
// the log below log_end_offset, by producer id, each with its open
// transaction and the coordinator epoch of its last marker.
type producersV2 struct {
	Version      int              `json:"version"`
	LogEndOffset int64            `json:"log_end_offset"`
	Producers    []producerFileV2 `json:"producers"`
}

// producerFileV2 is one producer id's epoch, last batches (oldest first),
// the coordinator epoch of its last marker and the first offset of its
// open transaction, -1 for none.
type producerFileV2 struct {
	ProducerID       int64         `json:"producer_id"`
	Epoch            int16         `json:"epoch"`
	Batches          []batchFileV1 `json:"batches"`
	CoordinatorEpoch int32         `json:"coordinator_epoch"`
	TxnFirstOffset   int64         `json:"txn_first_offset"`
}

// producersV1 is producers.json, version 1: the idempotent producers of
// the log below log_end_offset, by producer id.
type producersV1 struct {
	Version      int              `json:"version"`
	LogEndOffset int64            `json:"log_end_offset"`
	Producers    []producerFileV1 `json:"producers"`
}

// producerFileV1 is one producer id's epoch and last batches, oldest first.
type producerFileV1 struct {
	ProducerID int64         `json:"producer_id"`
	Epoch      int16         `json:"epoch"`
	Batches    []batchFileV1 `json:"batches"`
}

// batchFileV1 is one batch of a producer: its sequence and offset ranges.
type batchFileV1 struct {
	FirstSeq   int32 `json:"first_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
	LastOffset int64 `json:"last_offset"`
}

// producersV0 is producers.json as written before it had a version: the
// producers an object keyed by decimal producer id, with the field names
// of the Go types of the time.
type producersV0 struct {
	LogEndOffset int64                     `json:"log_end_offset"`
	Producers    map[int64]*producerFileV0 `json:"producers"`
}

type producerFileV0 struct {
	Epoch   int16         `json:"Epoch"`
	Batches []batchFileV0 `json:"Batches"`
}

type batchFileV0 struct {
	FirstSeq   int32 `json:"FirstSeq"`
	LastSeq    int32 `json:"LastSeq"`
	BaseOffset int64 `json:"BaseOffset"`
	LastOffset int64 `json:"LastOffset"`
}

// versionOf returns the "version" of a JSON object, 0 without one.
func versionOf(b []byte) (int, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, err
	}
	if v.Version == nil {
		return 0, nil
	}
	if *v.Version < 1 {
		return 0, fmt.Errorf("format version %d", *v.Version)
	}
	return *v.Version, nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// encodeProducers is producers.json for the table and the open
// transactions (producer id → first offset) as of logEnd, producers in id
// order.
func encodeProducers(logEnd int64, table map[int64]*producerState, open map[int64]int64) ([]byte, error) {
	f := producersV2{Version: producersFileVersion, LogEndOffset: logEnd, Producers: []producerFileV2{}}
	for _, id := range slices.Sorted(maps.Keys(table)) {
		st := table[id]
		if st == nil {
			continue
		}
		pf := producerFileV2{ProducerID: id, Epoch: st.Epoch, Batches: make([]batchFileV1, len(st.Batches)),
			CoordinatorEpoch: st.CoordinatorEpoch, TxnFirstOffset: -1}
		for i, b := range st.Batches {
			pf.Batches[i] = batchFileV1(b)
		}
		if first, ok := open[id]; ok {
			pf.TxnFirstOffset = first
		}
		f.Producers = append(f.Producers, pf)
	}
	for id := range open {
		if table[id] == nil {
			return nil, fmt.Errorf("partition: producer %d has an open transaction and no state", id)
		}
	}
	return json.Marshal(&f)
}

// decodeProducers reads producers.json of any version this code knows: the
// log end it describes, the producer table and the open transactions.
func decodeProducers(b []byte) (int64, map[int64]*producerState, map[int64]int64, error) {
	logEnd, table, open, err := decodeProducersVersion(b)
	if err != nil {
		return 0, nil, nil, err
	}
	for id, st := range table {
		if id < 0 || len(st.Batches) > producerWindow {
			return 0, nil, nil, fmt.Errorf("producer %d with %d batches", id, len(st.Batches))
		}
	}
	for id, first := range open {
		if first < 0 || first >= logEnd {
			return 0, nil, nil, fmt.Errorf("producer %d: transaction at %d, log end %d", id, first, logEnd)
		}
	}
	return logEnd, table, open, nil
}

func decodeProducersVersion(b []byte) (int64, map[int64]*producerState, map[int64]int64, error) {
	version, err := versionOf(b)
	if err != nil {
		return 0, nil, nil, err
	}
	table := map[int64]*producerState{}
	open := map[int64]int64{}
	var logEnd int64
	switch version {
	case 0:
		var f producersV0
		if err := json.Unmarshal(b, &f); err != nil {
			return 0, nil, nil, err
		}
		logEnd = f.LogEndOffset
		for id, pf := range f.Producers {
			if pf == nil {
				continue
			}
			st := &producerState{Epoch: pf.Epoch, Batches: make([]batchMeta, len(pf.Batches))}
			for i, bf := range pf.Batches {
				st.Batches[i] = batchMeta(bf)
			}
			table[id] = st
		}
	case 1:
		var f producersV1
		if err := decodeStrict(b, &f); err != nil {
			return 0, nil, nil, err
		}
		logEnd = f.LogEndOffset
		for _, pf := range f.Producers {
			if _, dup := table[pf.ProducerID]; dup {
				return 0, nil, nil, fmt.Errorf("producer %d twice", pf.ProducerID)
			}
			st := &producerState{Epoch: pf.Epoch, Batches: make([]batchMeta, len(pf.Batches))}
			for i, bf := range pf.Batches {
				st.Batches[i] = batchMeta(bf)
			}
			table[pf.ProducerID] = st
		}
	case 2:
		var f producersV2
		if err := decodeStrict(b, &f); err != nil {
			return 0, nil, nil, err
		}
		logEnd = f.LogEndOffset
		for _, pf := range f.Producers {
			if _, dup := table[pf.ProducerID]; dup {
				return 0, nil, nil, fmt.Errorf("producer %d twice", pf.ProducerID)
			}
			st := &producerState{Epoch: pf.Epoch, Batches: make([]batchMeta, len(pf.Batches)), CoordinatorEpoch: pf.CoordinatorEpoch}
			for i, bf := range pf.Batches {
				st.Batches[i] = batchMeta(bf)
			}
			table[pf.ProducerID] = st
			switch {
			case pf.TxnFirstOffset >= 0:
				open[pf.ProducerID] = pf.TxnFirstOffset
			case pf.TxnFirstOffset != -1:
				return 0, nil, nil, fmt.Errorf("producer %d: transaction first offset %d", pf.ProducerID, pf.TxnFirstOffset)
			}
		}
	default:
		return 0, nil, nil, fmt.Errorf("%w %d", errSideFileVersion, version)
	}
	return logEnd, table, open, nil
}

// epochsV1 is leader-epochs.json, version 1.
type epochsV1 struct {
	Version int           `json:"version"`
	Epochs  []epochFileV1 `json:"epochs"`
}

// epochFileV1 is one leader epoch and the first offset written in it;
// version 0 of the file is a bare list of these.
type epochFileV1 struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

func encodeEpochs(entries []EpochEntry) ([]byte, error) {
	f := epochsV1{Version: sideFileVersion, Epochs: make([]epochFileV1, len(entries))}
	for i, e := range entries {
		f.Epochs[i] = epochFileV1(e)
	}
	return json.Marshal(&f)
}

// decodeEpochs reads leader-epochs.json of any version this code knows
// and checks that epochs and offsets ascend.
func decodeEpochs(b []byte) ([]EpochEntry, error) {
	var list []epochFileV1
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(b, &list); err != nil { // version 0
			return nil, err
		}
	} else {
		version, err := versionOf(b)
		if err != nil {
			return nil, err
		}
		if version != 1 {
			return nil, fmt.Errorf("%w %d (remove the file to rebuild it from the log)", errSideFileVersion, version)
		}
		var f epochsV1
		if err := decodeStrict(b, &f); err != nil {
			return nil, err
		}
		list = f.Epochs
	}
	entries := make([]EpochEntry, len(list))
	for i, e := range list {
		entries[i] = EpochEntry(e)
		if i > 0 && (e.Epoch <= list[i-1].Epoch || e.StartOffset < list[i-1].StartOffset) {
			return nil, fmt.Errorf("entry %d (epoch %d at offset %d) out of order", i, e.Epoch, e.StartOffset)
		}
	}
	return entries, nil
}

// topic-id holds the topic's id as UUID text (cluster.TopicID.String),
// without a newline. It has one format (version 1) and no version marker:
// a change would take a new file name.

func encodeTopicID(id cluster.TopicID) []byte { return []byte(id.String()) }

// sameTopic reports whether a topic-id file's bytes name id. Anything
// else (another id, or bytes that are no id at all) is another topic.
func sameTopic(b []byte, id cluster.TopicID) bool { return bytes.Equal(b, encodeTopicID(id)) }
