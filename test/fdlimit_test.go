package test

import (
	"os"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

// TestOutOfFileDescriptorsKeepsServing lowers a running broker's descriptor
// limit to a few above what it holds, opens more connections than that,
// and closes them: the broker must log and count the failed accepts, stay
// up, and serve a new client once descriptors are free again.
func TestOutOfFileDescriptorsKeepsServing(t *testing.T) {
	// Start the broker with a soft limit well below the hard one: the Go
	// runtime raises it at start, to one below the hard limit.
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max > 1024 {
		low := unix.Rlimit{Cur: 1024, Max: own.Max}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
			t.Fatal(err)
		}
	}
	b := startBroker(t, "")
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	pid := b.cmd.Process.Pid
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Skipf("cannot count the broker's descriptors: %v", err)
	}
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		t.Skipf("cannot read the broker's descriptor limit: %v", err)
	}
	if lim.Cur < lim.Max-1 {
		t.Errorf("broker's descriptor limit: soft %d, hard %d; want the soft limit raised", lim.Cur, lim.Max)
	}
	limit := uint64(len(fds) + 8)
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Skipf("cannot lower the broker's descriptor limit: %v", err)
	}
	t.Logf("broker holds %d descriptors; limit now %d", len(fds), limit)

	var conns []*rawConn
	for range 32 {
		conns = append(conns, dialRaw(t, b.addr)) // the kernel completes the handshake; accept fails
	}
	waitLog(t, b, "ERROR", "accepting a connection failed", "too many open files")
	for _, rc := range conns {
		rc.c.Close()
	}
	select {
	case <-b.exited:
		t.Fatalf("broker exited when out of descriptors:\n%s", b.logs())
	default:
	}
	rc := dialRaw(t, b.addr)
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	if resp := rc.roundTrip(av).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions error %d", resp.ErrorCode)
	}
	rc.c.Close()
	if n := b.metric("runnel_accept_errors_total"); n < 1 {
		t.Errorf("runnel_accept_errors_total = %v after failed accepts", n)
	}
}
