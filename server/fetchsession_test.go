package server

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
)

// sessionReq is a consumer's fetch at version v naming session id at
// epoch, of the given partitions of topic (by name and id) from offset,
// forgetting forget. It waits for nothing.
func sessionReq(v int16, id, epoch int32, topic cluster.Topic, parts map[int32]int64, forget ...int32) *kmsg.FetchRequest {
	r := kmsg.NewPtrFetchRequest()
	r.SetVersion(v)
	r.ReplicaID, r.MaxBytes, r.MinBytes, r.MaxWaitMillis = -1, 1<<20, 0, 0
	r.SessionID, r.SessionEpoch = id, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic.Name, topic.ID
		for p := int32(0); p < 1000; p++ {
			off, ok := parts[p]
			if !ok {
				continue
			}
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.TopicID, ft.Partitions = topic.Name, topic.ID, forget
		r.ForgottenTopics = append(r.ForgottenTopics, ft)
	}
	return r
}

// answered is a partition of a fetch answer: its number, error and
// record bytes.
type answered struct {
	part  int32
	code  int16
	bytes int
}

func answers(resp *kmsg.FetchResponse) []answered {
	var out []answered
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out = append(out, answered{rp.Partition, rp.ErrorCode, len(rp.RecordBatches)})
		}
	}
	return out
}

func answeredParts(resp *kmsg.FetchResponse) []int32 {
	var out []int32
	for _, a := range answers(resp) {
		out = append(out, a.part)
	}
	return out
}

func sameParts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFetchSessionFullThenIncremental: a full fetch at epoch 0 opens a
// session and is answered in full; incremental fetches then list only the
// partitions with something new: records, a moved high watermark, a
// partition just added, an error. Forgotten partitions are no longer read.
func TestFetchSessionFullThenIncremental(t *testing.T) {
	for _, v := range []int16{7, 12, 13, 16} {
		t.Run("v"+itoa(v), func(t *testing.T) {
			ts := newTestServer(t, Config{})
			topic := ts.createTopic(t, "t", 4)
			ts.produce(t, "t", 1, 1, 1, 10)

			full := ts.call(t, sessionReq(v, 0, 0, topic, map[int32]int64{0: 0, 1: 0, 2: 0})).(*kmsg.FetchResponse)
			if full.SessionID == 0 || full.ErrorCode != 0 {
				t.Fatalf("full fetch: session %d, error %d; want a session", full.SessionID, full.ErrorCode)
			}
			if got := answeredParts(full); !sameParts(got, []int32{0, 1, 2}) {
				t.Fatalf("full fetch answered %v, want [0 1 2]", got)
			}
			sid := full.SessionID

			// Nothing changed, and partition 1 asks from where its records
			// end: nothing to say.
			inc := ts.call(t, sessionReq(v, sid, 1, topic, map[int32]int64{1: 1})).(*kmsg.FetchResponse)
			if inc.SessionID != sid || inc.ErrorCode != 0 || len(answers(inc)) != 0 {
				t.Fatalf("idle incremental fetch: session %d error %d answers %v; want session %d and none",
					inc.SessionID, inc.ErrorCode, answers(inc), sid)
			}

			// New records on 2 (not named in the request, read from the
			// session's position); 3 added to the session.
			ts.produce(t, "t", 2, 1, 1, 10)
			inc = ts.call(t, sessionReq(v, sid, 2, topic, map[int32]int64{3: 0})).(*kmsg.FetchResponse)
			if got := answers(inc); len(got) != 2 || got[0].part != 2 || got[0].bytes == 0 || got[1].part != 3 || got[1].bytes != 0 {
				t.Fatalf("incremental fetch answered %+v, want 2 with records then 3 (new to the session)", got)
			}

			// 2 moves on; 0 is forgotten and gets records it must not be
			// sent.
			ts.produce(t, "t", 0, 1, 1, 10)
			inc = ts.call(t, sessionReq(v, sid, 3, topic, map[int32]int64{2: 1}, 0)).(*kmsg.FetchResponse)
			if got := answers(inc); len(got) != 0 {
				t.Fatalf("after forgetting 0: answered %+v, want none", got)
			}

			// The topic goes: every partition of the session answers its
			// error, each time, until forgotten.
			if err := ts.meta.DeleteTopic("t"); err != nil {
				t.Fatal(err)
			}
			for p := int32(0); p < 4; p++ {
				if pt, err := ts.parts.Get("t", p); err == nil {
					if err := ts.parts.Remove(pt); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := kerr.UnknownTopicOrPartition.Code
			if v >= 13 {
				want = kerr.UnknownTopicID.Code
			}
			for epoch := int32(4); epoch <= 5; epoch++ {
				inc = ts.call(t, sessionReq(v, sid, epoch, topic, nil)).(*kmsg.FetchResponse)
				got := answers(inc)
				if len(got) != 3 {
					t.Fatalf("epoch %d after the delete: answered %+v, want partitions 1, 2, 3 with error %d", epoch, got, want)
				}
				for _, a := range got {
					if a.code != want {
						t.Fatalf("epoch %d after the delete: answered %+v, want error %d", epoch, got, want)
					}
				}
			}

			// Forgetting everything closes the session: the answer has
			// none, and the id is gone.
			inc = ts.call(t, sessionReq(v, sid, 6, topic, nil, 1, 2, 3)).(*kmsg.FetchResponse)
			if inc.SessionID != 0 || inc.ErrorCode != 0 || len(answers(inc)) != 0 {
				t.Fatalf("forgetting all: session %d error %d answers %v; want none", inc.SessionID, inc.ErrorCode, answers(inc))
			}
			if n := ts.sessions.len(); n != 0 {
				t.Fatalf("%d sessions open after the last was emptied", n)
			}
		})
	}
}

func itoa(v int16) string { return strconv.Itoa(int(v)) }

func newTestResponse(v int16) *consumer.Response { return &consumer.Response{Version: v} }

// TestFetchSessionHighWatermarkAndErrors: an incremental answer carries a
// partition whose high watermark moved without new records for it (its
// fetch position is past them), and a partition whose error went away.
func TestFetchSessionHighWatermarkAndErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	topic := ts.createTopic(t, "t", 2)
	// Partition 1 is fetched past its end: OFFSET_OUT_OF_RANGE.
	full := ts.call(t, sessionReq(12, 0, 0, topic, map[int32]int64{0: 0, 1: 5})).(*kmsg.FetchResponse)
	if got := answers(full); len(got) != 2 || got[1].code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("full fetch answered %+v, want 1 out of range", got)
	}
	sid := full.SessionID
	// The error is said again while it lasts.
	inc := ts.call(t, sessionReq(12, sid, 1, topic, nil)).(*kmsg.FetchResponse)
	if got := answers(inc); len(got) != 1 || got[0].part != 1 || got[0].code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("incremental fetch answered %+v, want 1 out of range", got)
	}
	// Five records make offset 5 valid: partition 1 is sent once more,
	// without error, and then no more.
	ts.produce(t, "t", 1, 5, 1, 10)
	inc = ts.call(t, sessionReq(12, sid, 2, topic, nil)).(*kmsg.FetchResponse)
	if got := answers(inc); len(got) != 1 || got[0].part != 1 || got[0].code != 0 || got[0].bytes != 0 {
		t.Fatalf("incremental fetch answered %+v, want 1 without error or records", got)
	}
	inc = ts.call(t, sessionReq(12, sid, 3, topic, nil)).(*kmsg.FetchResponse)
	if got := answers(inc); len(got) != 0 {
		t.Fatalf("incremental fetch answered %+v, want none", got)
	}
	// Partition 0's high watermark moves; the client asks from past the
	// new records (as after a seek), so none are sent, but the watermark is.
	ts.produce(t, "t", 0, 2, 1, 10)
	inc = ts.call(t, sessionReq(12, sid, 4, topic, map[int32]int64{0: 2})).(*kmsg.FetchResponse)
	if len(inc.Topics) != 1 || len(inc.Topics[0].Partitions) != 1 || inc.Topics[0].Partitions[0].HighWatermark != 2 {
		t.Fatalf("incremental fetch answered %+v, want 0 with high watermark 2", answers(inc))
	}
}

// TestFetchSessionErrors: every way a fetch can name a session wrongly is
// refused with Kafka's error, with no partitions and session id 0, and the
// session stays usable by its owner.
func TestFetchSessionErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	topic := ts.createTopic(t, "t", 1)
	full := ts.call(t, sessionReq(12, 0, 0, topic, map[int32]int64{0: 0})).(*kmsg.FetchResponse)
	sid := full.SessionID
	if sid == 0 {
		t.Fatal("no session opened")
	}
	for _, c := range []struct {
		name      string
		v         int16
		id, epoch int32
		principal string
		want      *kerr.Error
	}{
		{"unknown id", 12, sid + 1, 1, Anonymous, kerr.FetchSessionIDNotFound},
		{"no id", 12, 0, 1, Anonymous, kerr.FetchSessionIDNotFound},
		{"epoch ahead", 12, sid, 2, Anonymous, kerr.InvalidFetchSessionEpoch},
		{"epoch below -1", 12, sid, -2, Anonymous, kerr.InvalidFetchSessionEpoch},
		{"another principal", 12, sid, 1, "User:mallory", kerr.FetchSessionIDNotFound},
		{"topic ids on a session without", 13, sid, 1, Anonymous, kerr.FetchSessionTopicIDError},
	} {
		resp := ts.callFrom(t, "127.0.0.1", c.principal, sessionReq(c.v, c.id, c.epoch, topic, map[int32]int64{0: 0})).(*kmsg.FetchResponse)
		if resp.ErrorCode != c.want.Code || resp.SessionID != 0 || len(resp.Topics) != 0 {
			t.Errorf("%s: error %d session %d topics %d; want error %d (%s), session 0, none",
				c.name, resp.ErrorCode, resp.SessionID, len(resp.Topics), c.want.Code, c.want.Message)
		}
	}
	// Another principal cannot close it either.
	ts.callFrom(t, "127.0.0.1", "User:mallory", sessionReq(12, sid, -1, topic, map[int32]int64{0: 0}))
	if resp := ts.call(t, sessionReq(12, sid, 1, topic, nil)).(*kmsg.FetchResponse); resp.ErrorCode != 0 || resp.SessionID != sid {
		t.Fatalf("owner's fetch after the refusals: error %d session %d", resp.ErrorCode, resp.SessionID)
	}

	// A session opened with topic ids is not used without.
	full13 := ts.call(t, sessionReq(13, 0, 0, topic, map[int32]int64{0: 0})).(*kmsg.FetchResponse)
	if resp := ts.call(t, sessionReq(12, full13.SessionID, 1, topic, nil)).(*kmsg.FetchResponse); resp.ErrorCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("v12 fetch of a v13 session: error %d, want %d", resp.ErrorCode, kerr.FetchSessionTopicIDError.Code)
	}
}

// TestFetchSessionClose: epoch -1 closes the named session and opens
// none; epoch 0 naming a session closes it and opens another.
func TestFetchSessionClose(t *testing.T) {
	ts := newTestServer(t, Config{})
	topic := ts.createTopic(t, "t", 1)
	parts := map[int32]int64{0: 0}
	a := ts.call(t, sessionReq(12, 0, 0, topic, parts)).(*kmsg.FetchResponse).SessionID
	b := ts.call(t, sessionReq(12, a, 0, topic, parts)).(*kmsg.FetchResponse).SessionID
	if b == 0 || b == a {
		t.Fatalf("reopening session %d gave %d, want a new one", a, b)
	}
	if resp := ts.call(t, sessionReq(12, a, 1, topic, nil)).(*kmsg.FetchResponse); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("the replaced session answers error %d, want FETCH_SESSION_ID_NOT_FOUND", resp.ErrorCode)
	}
	final := ts.call(t, sessionReq(12, b, -1, topic, parts)).(*kmsg.FetchResponse)
	if final.SessionID != 0 || len(answers(final)) != 1 {
		t.Fatalf("closing fetch: session %d answers %v, want 0 and the partition", final.SessionID, answers(final))
	}
	if n := ts.sessions.len(); n != 0 {
		t.Fatalf("%d sessions open after closing", n)
	}
	// Sessionless fetches and those before v7 open none.
	ts.call(t, sessionReq(12, 0, -1, topic, parts))
	ts.call(t, sessionReq(6, 0, 0, topic, parts))
	if n := ts.sessions.len(); n != 0 {
		t.Fatalf("%d sessions open after sessionless fetches", n)
	}
}

// TestFetchSessionOvertaken: a fetch whose session was used again before
// it was answered (a pipelining client) is answered
// INVALID_FETCH_SESSION_EPOCH, as Kafka does.
func TestFetchSessionOvertaken(t *testing.T) {
	ts := newTestServer(t, Config{})
	topic := ts.createTopic(t, "t", 1)
	sid := ts.call(t, sessionReq(12, 0, 0, topic, map[int32]int64{0: 0})).(*kmsg.FetchResponse).SessionID
	id := identity{principal: Anonymous}
	h := requestHeader{Key: 1, Version: 12}
	first := sessionReq(12, sid, 1, topic, nil)
	sf1 := ts.sessions.begin(id, h, first)
	sf2 := ts.sessions.begin(id, h, sessionReq(12, sid, 2, topic, nil))
	if sf1.kind != sessionIncremental || sf2.kind != sessionIncremental {
		t.Fatalf("kinds %d, %d; want both incremental", sf1.kind, sf2.kind)
	}
	resp := newTestResponse(12)
	ts.sessions.finish(&sf1, id, h, first, nil, resp)
	if resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("overtaken fetch: error %d, want INVALID_FETCH_SESSION_EPOCH", resp.ErrorCode)
	}
}

// cacheWith returns a cache of max sessions on a clock the test moves.
func cacheWith(max int, clock *time.Time) (*fetchSessionCache, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return newFetchSessionCache(max, func() time.Time { return *clock }, newFetchSessionMetrics(reg)), reg
}

func openSession(t *testing.T, c *fetchSessionCache, clock time.Time, privileged bool, size int32) *fetchSession {
	t.Helper()
	fs := &fetchSession{privileged: privileged, created: clock}
	fs.mu.parts = map[sessionKey]*sessionPartition{}
	fs.lastUsed.Store(clock.UnixNano())
	fs.size.Store(size)
	if !c.add(fs) {
		return nil
	}
	return fs
}

func cached(c *fetchSessionCache, fs *fetchSession) bool { return fs != nil && c.get(fs.id) == fs }

// TestFetchSessionCacheEviction: Kafka's rules for a full cache.
func TestFetchSessionCacheEviction(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	t.Run("young sessions are kept from consumers", func(t *testing.T) {
		clock := start
		c, _ := cacheWith(2, &clock)
		a, b := openSession(t, c, clock, false, 10), openSession(t, c, clock, false, 10)
		clock = clock.Add(time.Minute)
		if openSession(t, c, clock, false, 100) != nil {
			t.Fatal("a consumer's session evicted a young one")
		}
		if !cached(c, a) || !cached(c, b) {
			t.Fatal("a session went")
		}
	})
	t.Run("a stale session goes, least recently used first", func(t *testing.T) {
		clock := start
		c, reg := cacheWith(2, &clock)
		a := openSession(t, c, clock, true, 100)
		clock = clock.Add(time.Second)
		b := openSession(t, c, clock, true, 100)
		clock = clock.Add(fetchSessionEvictAfter + 500*time.Millisecond) // a is stale, b is not
		n := openSession(t, c, clock, false, 1)
		if n == nil || cached(c, a) || !cached(c, b) {
			t.Fatalf("new session %v, a cached %v, b cached %v; want the new one in place of a", n != nil, cached(c, a), cached(c, b))
		}
		if v := gathered(t, reg, "runnel_fetch_session_evictions_total"); v != 1 {
			t.Fatalf("%v evictions counted, want 1", v)
		}
		if v := gathered(t, reg, "runnel_fetch_sessions"); v != 2 {
			t.Fatalf("sessions gauge %v, want 2", v)
		}
	})
	t.Run("a follower's session evicts a young consumer's", func(t *testing.T) {
		clock := start
		c, _ := cacheWith(2, &clock)
		small := openSession(t, c, clock, false, 5)
		big := openSession(t, c, clock, false, 500)
		f := openSession(t, c, clock, true, 1)
		if f == nil || cached(c, small) || !cached(c, big) {
			t.Fatal("the follower's session did not take the smaller consumer session's place")
		}
		// Followers' young sessions are safe even from followers.
		big2 := openSession(t, c, clock, true, 1000)
		if big2 == nil || cached(c, big) || !cached(c, f) {
			t.Fatal("want the consumer's session evicted, the follower's kept")
		}
		if openSession(t, c, clock, true, 5000) != nil {
			t.Fatal("a young follower's session was evicted")
		}
	})
	t.Run("old sessions go to larger ones, not to equal ones", func(t *testing.T) {
		clock := start
		c, _ := cacheWith(2, &clock)
		a := openSession(t, c, clock, false, 10)
		b := openSession(t, c, clock, false, 20)
		clock = clock.Add(fetchSessionEvictAfter + time.Second)
		// Keep both recently used, so none is stale.
		a.lastUsed.Store(clock.UnixNano())
		b.lastUsed.Store(clock.UnixNano())
		if openSession(t, c, clock, false, 10) != nil {
			t.Fatal("a session as large as the smallest evicted it")
		}
		n := openSession(t, c, clock, false, 11)
		if n == nil || cached(c, a) || !cached(c, b) {
			t.Fatal("want the larger new session in place of the smallest")
		}
		// An old follower's session goes to a larger follower's.
		c2, _ := cacheWith(1, &clock)
		old := openSession(t, c2, start, true, 10)
		old.lastUsed.Store(clock.UnixNano())
		if openSession(t, c2, clock, false, 1000) != nil {
			t.Fatal("a consumer's session evicted a follower's")
		}
		if openSession(t, c2, clock, true, 11) == nil || cached(c2, old) {
			t.Fatal("a larger follower's session did not evict an old smaller one")
		}
	})
}

// TestFetchSessionCacheBounded: through the server, a full cache answers
// full fetches without a session (id 0), and the sessions gauge and the
// request counters say so.
func TestFetchSessionCacheBounded(t *testing.T) {
	ts := newTestServer(t, Config{MaxFetchSessions: 2})
	topic := ts.createTopic(t, "t", 1)
	parts := map[int32]int64{0: 0}
	var ids []int32
	for i := 0; i < 3; i++ {
		ids = append(ids, ts.call(t, sessionReq(12, 0, 0, topic, parts)).(*kmsg.FetchResponse).SessionID)
	}
	if ids[0] == 0 || ids[1] == 0 || ids[2] != 0 {
		t.Fatalf("session ids %v, want two and then none", ids)
	}
	if n := ts.sessions.len(); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
}

// TestFetchSessionMetrics: the request counters count full and
// incremental fetches.
func TestFetchSessionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, Config{Metrics: NewMetrics(reg)})
	topic := ts.createTopic(t, "t", 3)
	sid := ts.call(t, sessionReq(12, 0, 0, topic, map[int32]int64{0: 0, 1: 0, 2: 0})).(*kmsg.FetchResponse).SessionID
	ts.call(t, sessionReq(12, sid, 1, topic, nil))
	ts.call(t, sessionReq(12, sid, 2, topic, nil, 2))
	const requests = "runnel_fetch_session_requests_total"
	if f, i := gathered(t, reg, requests, "kind", "full"), gathered(t, reg, requests, "kind", "incremental"); f != 1 || i != 2 {
		t.Fatalf("%v full and %v incremental counted, want 1 and 2", f, i)
	}
	if o, p := gathered(t, reg, "runnel_fetch_sessions"), gathered(t, reg, "runnel_fetch_session_partitions"); o != 1 || p != 2 {
		t.Fatalf("gauges: %v sessions, %v partitions; want 1 and 2", o, p)
	}
}

// gathered is the value of a counter or gauge in reg (see connServer.metric).
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	return (&connServer{reg: reg}).metric(t, name, labels...)
}

// TestFetchSessionsConcurrent: clients fetching through their own
// sessions, others through one shared session (so fetches overtake each
// other), and full fetches that evict, all at once under the race
// detector: every answer is a session error or a consistent answer, and
// the cache never holds more than its bound.
func TestFetchSessionsConcurrent(t *testing.T) {
	const max = 4
	ts := newTestServer(t, Config{MaxFetchSessions: max})
	topic := ts.createTopic(t, "t", 8)
	all := map[int32]int64{}
	for p := int32(0); p < 8; p++ {
		all[p] = 0
	}
	shared := ts.call(t, sessionReq(13, 0, 0, topic, all)).(*kmsg.FetchResponse).SessionID
	var sharedEpoch atomic.Int32
	sharedEpoch.Store(1)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sid, epoch int32
			for i := 0; i < 50; i++ {
				switch g % 3 {
				case 0: // its own session
					resp := ts.call(t, sessionReq(13, sid, epoch, topic, map[int32]int64{int32(i % 8): 0})).(*kmsg.FetchResponse)
					switch resp.ErrorCode {
					case 0:
						if resp.SessionID == 0 {
							sid, epoch = 0, 0 // no room: full again
						} else {
							sid, epoch = resp.SessionID, nextSessionEpoch(epoch)
						}
					case kerr.FetchSessionIDNotFound.Code:
						sid, epoch = 0, 0 // evicted
					default:
						errs <- kerr.ErrorForCode(resp.ErrorCode).Error()
					}
				case 1: // the shared session, at whatever epoch it had
					e := sharedEpoch.Load()
					resp := ts.call(t, sessionReq(13, shared, e, topic, nil)).(*kmsg.FetchResponse)
					switch resp.ErrorCode {
					case 0:
						sharedEpoch.CompareAndSwap(e, nextSessionEpoch(e))
					case kerr.InvalidFetchSessionEpoch.Code, kerr.FetchSessionIDNotFound.Code:
					default:
						errs <- kerr.ErrorForCode(resp.ErrorCode).Error()
					}
				case 2: // sessions opened and left behind
					ts.call(t, sessionReq(13, 0, 0, topic, all))
				}
				if n := ts.sessions.len(); n > max {
					errs <- "cache over its bound"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestFetchNoPartitionsAnsweredAtOnce: a fetch that names no partitions,
// as one that forgets the last of its session, is answered without
// waiting for MinBytes, as Kafka answers it.
func TestFetchNoPartitionsAnsweredAtOnce(t *testing.T) {
	ts := newTestServer(t, Config{MaxFetchWait: time.Hour})
	topic := ts.createTopic(t, "t", 1)
	sid := ts.call(t, sessionReq(12, 0, 0, topic, map[int32]int64{0: 0})).(*kmsg.FetchResponse).SessionID
	for _, req := range []*kmsg.FetchRequest{sessionReq(12, 0, -1, topic, nil), sessionReq(12, sid, 1, topic, nil, 0)} {
		req.MinBytes, req.MaxWaitMillis = 1, math.MaxInt32
		done := make(chan *kmsg.FetchResponse, 1)
		go func() { done <- ts.call(t, req).(*kmsg.FetchResponse) }()
		select {
		case resp := <-done:
			if resp.ErrorCode != 0 || len(resp.Topics) != 0 {
				t.Fatalf("answer: error %d, %d topics", resp.ErrorCode, len(resp.Topics))
			}
		case <-time.After(time.Minute):
			t.Fatal("a fetch of no partitions parked for MinBytes")
		}
	}
}
