package replica

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDoEndsWithContext sends a request to a leader that never answers,
// as one behind a dead link: canceling the context must end the call at
// once, not after its timeout, so a fetcher on that link can be stopped.
func TestDoEndsWithContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(time.Minute)
		}
	}()
	c, err := dial(context.Background(), nil, l.Addr().String(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.do(ctx, kmsg.NewPtrApiVersionsRequest(), time.Hour)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("do after cancel: %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("do did not return after its context was canceled")
	}
}
