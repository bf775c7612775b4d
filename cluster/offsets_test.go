package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/runnel-io/runnel/group"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openOffsets(t *testing.T, dir string, sync bool) *OffsetsDB {
	t.Helper()
	o, err := OpenOffsets(dir, sync, quietLogger())
	if err != nil {
		t.Fatalf("OpenOffsets: %v", err)
	}
	return o
}

func closeOffsets(t *testing.T, o *OffsetsDB) {
	t.Helper()
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

type offsetKeyT struct {
	group, topic string
	partition    int32
}

func load(t *testing.T, o *OffsetsDB) map[offsetKeyT]group.Offset {
	t.Helper()
	loaded, err := o.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	out := map[offsetKeyT]group.Offset{}
	for g, offs := range loaded {
		if len(offs) == 0 {
			t.Fatalf("group %q loaded with no offsets", g)
		}
		for _, off := range offs {
			k := offsetKeyT{g, off.Topic, off.Partition}
			if _, dup := out[k]; dup {
				t.Fatalf("%+v loaded twice", k)
			}
			out[k] = off
		}
	}
	return out
}

func sameOffset(a, b group.Offset) bool {
	return a.Topic == b.Topic && a.Partition == b.Partition && a.Offset == b.Offset && a.LeaderEpoch == b.LeaderEpoch &&
		a.Metadata == b.Metadata && a.CommitTime.Equal(b.CommitTime)
}

func wantLoaded(t *testing.T, what string, got, want map[offsetKeyT]group.Offset) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d offsets loaded, want %d\ngot  %+v\nwant %+v", what, len(got), len(want), got, want)
	}
	for k, w := range want {
		g, ok := got[k]
		w.CommitTime = w.CommitTime.Truncate(time.Millisecond)
		if !ok || !sameOffset(g, w) {
			t.Fatalf("%s: %q/%q/%d loaded as %+v (present %v), want %+v", what, k.group, k.topic, k.partition, g, ok, w)
		}
	}
}

func commit(t *testing.T, o *OffsetsDB, g string, offs ...group.Offset) {
	t.Helper()
	if err := o.Commit(g, offs)(); err != nil {
		t.Fatalf("Commit(%q): %v", g, err)
	}
}

func TestOffsetsRoundTrip(t *testing.T) {
	base := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	offsets := []group.Offset{
		{Topic: "orders", Partition: 0, Offset: 0, LeaderEpoch: -1, CommitTime: base},
		{Topic: "orders", Partition: 1, Offset: 42, LeaderEpoch: 7, Metadata: "consumer-1 @ host", CommitTime: base.Add(time.Millisecond)},
		{Topic: "orders", Partition: math.MaxInt32, Offset: math.MaxInt64, LeaderEpoch: math.MaxInt32, Metadata: "\x00\xff binary \x00", CommitTime: base.Add(time.Hour)},
		{Topic: "orders", Partition: -1, Offset: -1, LeaderEpoch: math.MinInt32, CommitTime: base.Add(999 * time.Microsecond)},
		{Topic: "big", Partition: 3, Offset: 1 << 40, LeaderEpoch: 0, Metadata: strings.Repeat("m", 4096), CommitTime: base.In(time.FixedZone("X", 3600))},
	}
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			dir := t.TempDir()
			o := openOffsets(t, dir, sync)
			want := map[offsetKeyT]group.Offset{}
			for i, off := range offsets {
				g := fmt.Sprintf("g%d", i%2)
				commit(t, o, g, off)
				want[offsetKeyT{g, off.Topic, off.Partition}] = off
			}
			// An overwrite keeps only the newest.
			newer := offsets[1]
			newer.Offset, newer.Metadata, newer.CommitTime = 43, "", base.Add(2*time.Hour)
			commit(t, o, "g1", newer)
			want[offsetKeyT{"g1", newer.Topic, newer.Partition}] = newer
			wantLoaded(t, "before reopening", load(t, o), want)
			closeOffsets(t, o)

			o = openOffsets(t, dir, sync)
			defer closeOffsets(t, o)
			wantLoaded(t, "after reopening", load(t, o), want)
			for k, off := range load(t, o) {
				if off.CommitTime.UnixMilli() != want[k].CommitTime.UnixMilli() {
					t.Fatalf("commit time %v, want %v to the millisecond", off.CommitTime, want[k].CommitTime)
				}
			}
		})
	}
}

// Group ids and topics are any bytes: ids that are prefixes of each other,
// hold 0x00 or 0xff, or are long enough for a two-byte length, keep apart.
func TestOffsetsKeysDoNotCollide(t *testing.T) {
	names := []string{"", "a", "a\x00", "a\x00b", "ab", "a\xff", "a\xff\xff", "b", "b\x00", "\xff", "\x00",
		strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 300), "o", "o\x01"}
	dir := t.TempDir()
	o := openOffsets(t, dir, true)
	want := map[offsetKeyT]group.Offset{}
	n := int64(0)
	for _, g := range names {
		var offs []group.Offset
		for _, topic := range names {
			for _, p := range []int32{0, 1, 256} {
				n++
				off := group.Offset{Topic: topic, Partition: p, Offset: n, LeaderEpoch: int32(n), Metadata: g + "|" + topic, CommitTime: time.UnixMilli(n)}
				offs = append(offs, off)
				want[offsetKeyT{g, topic, p}] = off
			}
		}
		commit(t, o, g, offs...)
	}
	wantLoaded(t, "loaded", load(t, o), want)

	// DeleteGroup removes one group and nothing of the others.
	for _, g := range []string{"a", "a\xff", "", strings.Repeat("a", 127)} {
		if err := o.DeleteGroup(g); err != nil {
			t.Fatalf("DeleteGroup(%q): %v", g, err)
		}
		for k := range want {
			if k.group == g {
				delete(want, k)
			}
		}
		wantLoaded(t, fmt.Sprintf("after DeleteGroup(%q)", g), load(t, o), want)
	}
	// Delete removes exactly the partitions named.
	gone := []group.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "a\x00", Partition: 256}, {Topic: "nope", Partition: 0}}
	if err := o.Delete("ab", gone); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, tp := range gone {
		delete(want, offsetKeyT{"ab", tp.Topic, tp.Partition})
	}
	wantLoaded(t, "after Delete", load(t, o), want)
	closeOffsets(t, o)

	o = openOffsets(t, dir, true)
	defer closeOffsets(t, o)
	wantLoaded(t, "after reopening", load(t, o), want)
}

func TestOffsetsDeleteDurable(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			dir := t.TempDir()
			o := openOffsets(t, dir, sync)
			commit(t, o, "g", group.Offset{Topic: "t", Partition: 0, Offset: 1}, group.Offset{Topic: "t", Partition: 1, Offset: 2})
			commit(t, o, "h", group.Offset{Topic: "t", Partition: 0, Offset: 3})
			commit(t, o, "gone", group.Offset{Topic: "t", Partition: 0, Offset: 4})
			if err := o.Delete("g", []group.TopicPartition{{Topic: "t", Partition: 1}}); err != nil {
				t.Fatal(err)
			}
			if err := o.DeleteGroup("gone"); err != nil {
				t.Fatal(err)
			}
			if err := o.DeleteGroup("never existed"); err != nil {
				t.Fatal(err)
			}
			if err := o.Delete("g", nil); err != nil {
				t.Fatal(err)
			}
			closeOffsets(t, o)
			o = openOffsets(t, dir, sync)
			defer closeOffsets(t, o)
			loaded, err := o.Load()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := loaded["gone"]; ok || len(loaded) != 2 || len(loaded["g"]) != 1 || loaded["g"][0].Offset != 1 || len(loaded["h"]) != 1 {
				t.Fatalf("loaded %+v", loaded)
			}
		})
	}
}

func TestOffsetsClosed(t *testing.T) {
	o := openOffsets(t, t.TempDir(), true)
	commit(t, o, "g", group.Offset{Topic: "t", Partition: 0, Offset: 1})
	closeOffsets(t, o)
	closeOffsets(t, o) // idempotent
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"commit", func() error { return o.Commit("g", []group.Offset{{Topic: "t"}})() }},
		{"delete", func() error { return o.Delete("g", []group.TopicPartition{{Topic: "t"}}) }},
		{"delete group", func() error { return o.DeleteGroup("g") }},
		{"load", func() error { _, err := o.Load(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrOffsetsClosed) {
				t.Fatalf("%s after Close: %v, want ErrOffsetsClosed", tc.name, err)
			}
		})
	}
}

func TestOffsetsLoadRejectsBadRecords(t *testing.T) {
	good := offsetKey("g", "t", 0)
	value := func(version byte, size int) []byte {
		v := make([]byte, size)
		v[0] = version
		return v
	}
	for _, tc := range []struct {
		name       string
		key, value []byte
	}{
		{"value version", good, value(2, offsetValueSize)},
		{"short value", good, value(offsetValueV1, offsetValueSize-1)},
		{"group length past the key", []byte{offsetKeyPrefix, 50, 'g'}, value(offsetValueV1, offsetValueSize)},
		{"no partition", append(groupPrefix("g"), 1, 't'), value(offsetValueV1, offsetValueSize)},
		{"partition too long", append(append([]byte(nil), good...), 0), value(offsetValueV1, offsetValueSize)},
		{"bad uvarint", []byte{offsetKeyPrefix, 0x80}, value(offsetValueV1, offsetValueSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := openOffsets(t, t.TempDir(), true)
			defer closeOffsets(t, o)
			if err := o.db.Set(tc.key, tc.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if _, err := o.Load(); !errors.Is(err, errBadOffsetRecord) {
				t.Fatalf("Load = %v, want errBadOffsetRecord", err)
			}
		})
	}
}

// The coordinator over the database: offsets committed before a restart
// are fetched after it; a deleted group stays deleted.
func TestOffsetsWithCoordinator(t *testing.T) {
	dir := t.TempDir()
	cfg := group.Config{Logger: quietLogger()}
	o := openOffsets(t, dir, true)
	c, err := group.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"keep", "drop", "keep\x00drop"} {
		errs, wait := c.Commit(group.CommitRequest{Group: g, Generation: -1, Offsets: []group.Offset{
			{Topic: "t", Partition: 0, Offset: 10, LeaderEpoch: 2, Metadata: g},
			{Topic: "t", Partition: 1, Offset: 11, LeaderEpoch: -1},
		}})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := c.FetchOffsets("keep", nil)
	if errs := c.DeleteGroups([]string{"drop"}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	c.Close()
	closeOffsets(t, o)

	o = openOffsets(t, dir, true)
	defer closeOffsets(t, o)
	c, err = group.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	after, err := c.FetchOffsets("keep", nil)
	if err != nil || len(after) != 2 {
		t.Fatalf("after restart: %+v, %v", after, err)
	}
	for tp, b := range before {
		a := after[tp]
		b.CommitTime = b.CommitTime.Truncate(time.Millisecond)
		if !sameOffset(a, b) {
			t.Fatalf("%+v after restart is %+v, was %+v", tp, a, b)
		}
	}
	if got, _ := c.FetchOffsets("drop", nil); len(got) != 0 {
		t.Fatalf("deleted group has offsets after restart: %+v", got)
	}
	if got, _ := c.FetchOffsets("keep\x00drop", nil); len(got) != 2 || got[group.TopicPartition{Topic: "t", Partition: 0}].Metadata != "keep\x00drop" {
		t.Fatalf("other group after restart: %+v", got)
	}
	var listed []string
	for _, l := range c.ListGroups() {
		listed = append(listed, l.Group)
	}
	if strings.Join(listed, ",") != "keep,keep\x00drop" {
		t.Fatalf("listed %q", listed)
	}
}

// FuzzDecodeOffset: a corrupt record in the offsets database is an error
// from Load, never a panic.
func FuzzDecodeOffset(f *testing.F) {
	f.Add(offsetKey("group", "topic", 3), []byte{offsetValueV1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 'm'})
	f.Add([]byte{offsetKeyPrefix}, []byte{})
	f.Add([]byte{offsetKeyPrefix, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte{1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if len(key) == 0 {
			return // keys from the iterator always carry the prefix byte
		}
		g, off, err := decodeOffset(key, value)
		if err != nil {
			return
		}
		if got := offsetKey(g, off.Topic, off.Partition); string(got) != string(key) {
			t.Fatalf("decoded %q %q %d from key %x, which encodes back as %x", g, off.Topic, off.Partition, key, got)
		}
	})
}
