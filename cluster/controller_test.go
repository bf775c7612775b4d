package cluster

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"testing"
	"time"
)

// TestLivenessCheck walks the controller's watch through time: a silent
// broker is fenced after the session, one whose heartbeat connection
// closed after the grace unless it heartbeats again, the leader a new
// controller took over from likewise, and a fenced broker that heartbeats
// again is unfenced.
func TestLivenessCheck(t *testing.T) {
	o := ControllerOptions{SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	brokers := func(fenced ...int32) []BrokerInfo {
		var out []BrokerInfo
		for id := int32(1); id <= 4; id++ {
			out = append(out, BrokerInfo{ID: id, Fenced: slices.Contains(fenced, id)})
		}
		return out
	}
	type want struct {
		fence   []int32
		unfence []int32
	}
	check := func(l *liveness, what string, bs []BrokerInfo, now time.Time, w want) {
		t.Helper()
		fence, unfence := l.check(1, bs, o, now)
		got := slices.Sorted(maps.Keys(fence))
		if !slices.Equal(got, w.fence) || !slices.Equal(unfence, w.unfence) {
			t.Fatalf("%s: fence %v unfence %v, want fence %v unfence %v (why: %v)", what, got, unfence, w.fence, w.unfence, fence)
		}
	}

	t.Run("session", func(t *testing.T) {
		var l liveness
		check(&l, "new controller", brokers(), at(0), want{})
		for s := time.Duration(1); s <= 5; s++ {
			l.beat(2, at(s*time.Second))
			l.beat(3, at(s*time.Second))
		}
		// Broker 4 never heartbeats: a whole session from the start.
		check(&l, "5.9 s", brokers(), at(5900*time.Millisecond), want{})
		check(&l, "6 s", brokers(), at(6*time.Second), want{fence: []int32{4}})
		// Once fenced it stays so until it heartbeats.
		check(&l, "7 s", brokers(4), at(7*time.Second), want{})
		l.beat(4, at(7500*time.Millisecond))
		l.beat(2, at(7500*time.Millisecond))
		l.beat(3, at(7500*time.Millisecond))
		check(&l, "after its heartbeat", brokers(4), at(8*time.Second), want{unfence: []int32{4}})
	})

	t.Run("connection closed", func(t *testing.T) {
		var l liveness
		check(&l, "new controller", brokers(), at(0), want{})
		l.beat(2, at(time.Second))
		l.beat(3, at(time.Second))
		l.beat(4, at(time.Second))
		l.connLost(2, at(1100*time.Millisecond))
		l.connLost(3, at(1100*time.Millisecond))
		// Broker 3 heartbeats again on a new connection; 2 does not.
		l.beat(3, at(2*time.Second))
		l.beat(4, at(2*time.Second))
		check(&l, "within the grace", brokers(), at(3*time.Second), want{})
		check(&l, "after the grace", brokers(), at(3100*time.Millisecond), want{fence: []int32{2}})
		// Fenced for a lost connection, a heartbeat of before the loss
		// does not bring it back; a new one does.
		check(&l, "fenced, no new heartbeat", brokers(2), at(3200*time.Millisecond), want{})
		l.beat(2, at(3300*time.Millisecond))
		check(&l, "fenced, heartbeat again", brokers(2), at(3400*time.Millisecond), want{unfence: []int32{2}})
	})

	t.Run("registered again", func(t *testing.T) {
		var l liveness
		check(&l, "new controller", brokers(), at(0), want{})
		l.beat(2, at(time.Second))
		l.beat(3, at(time.Second))
		l.beat(4, at(time.Second))
		l.connLost(4, at(1100*time.Millisecond))
		check(&l, "4 lost", brokers(), at(3200*time.Millisecond), want{fence: []int32{4}})
		// Broker 4 restarts: its registration unfences it, and it is
		// alive from then, though its last heartbeat is old.
		l.beat(2, at(6*time.Second))
		l.beat(3, at(6*time.Second))
		again := brokers()
		again[3].Epoch = 1
		check(&l, "registered", again, at(8*time.Second), want{})
		check(&l, "a session on", again, at(14*time.Second), want{fence: []int32{2, 3, 4}})
	})

	t.Run("previous leader", func(t *testing.T) {
		var l liveness
		l.following(3)
		l.following(0) // between leaders: the last one is kept
		check(&l, "elected", brokers(), at(0), want{})
		l.beat(2, at(time.Second))
		l.beat(4, at(time.Second))
		check(&l, "grace", brokers(), at(1900*time.Millisecond), want{})
		check(&l, "after the grace", brokers(), at(2*time.Second), want{fence: []int32{3}})

		// A controller that led before, followed 4, and leads again
		// suspects 4, not a broker of its earlier term.
		l.following(4)
		check(&l, "elected again", brokers(3), at(10*time.Second), want{})
		l.beat(2, at(11*time.Second))
		l.beat(3, at(11*time.Second))
		check(&l, "4 silent", brokers(3), at(12*time.Second), want{fence: []int32{4}, unfence: []int32{3}})
	})
}

// TestHeartbeatCloseInFlight: closing the heartbeat connection while a
// heartbeat waits for the controller's answer ends the wait at once; no
// lock is held across the round trip.
func TestHeartbeatCloseInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 1+4+5) // kind byte, frame length, frame
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		got <- c // never answers
	}()
	var h heartbeatConn
	sent := make(chan error, 1)
	go func() {
		_, err := h.send(context.Background(), ln.Addr().String(), []byte{heartbeatFrame, 0, 0, 0, 1})
		sent <- err
	}()
	c := <-got
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		h.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(proposeTimeout / 2):
		t.Fatal("close waited for the heartbeat in flight")
	}
	if err := <-sent; err == nil {
		t.Fatal("the heartbeat in flight succeeded after close")
	}
	if _, err := h.send(context.Background(), ln.Addr().String(), []byte{heartbeatFrame, 0, 0, 0, 1}); !errors.Is(err, errHeartbeatClosed) {
		t.Fatalf("a heartbeat after close: %v", err)
	}
}
