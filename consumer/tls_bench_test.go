package consumer_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/testcerts"
	"github.com/runnel-io/runnel/segment"
)

// BenchmarkFetchSend sends one fetch response of 32 MiB of records (one
// region of a page-cached segment) per op to a loopback reader that
// discards it, through the paths a broker uses: sendfile on a plaintext
// connection, the copy path, and SendBuffered through crypto/tls (AES-GCM
// on this machine) on a TLS one. sender-cpu-s/GB is the CPU of the sending
// thread per 10^9 bytes (see the bare loops), the figure to compare.
//
//	go test -run '^$' -bench FetchSend -benchtime 20x ./consumer/
func BenchmarkFetchSend(b *testing.B) {
	dir := b.TempDir()
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := segment.Open(filepath.Join(dir, "t-0"), segment.Options{Index: db.Partition("t-0"),
		Logger: slog.New(slog.DiscardHandler), SegmentBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { l.Close(); db.Close() }()
	for i := range 32 {
		if _, err := l.Append(testbatch.Make(testbatch.Spec{Timestamp: int64(i), Values: testbatch.Values(16, 64<<10, byte(i))}), 1); err != nil {
			b.Fatal(err)
		}
	}
	encode := func() *consumer.Encoded {
		r, err := l.Read(0, 1<<30, l.LogEndOffset())
		if err != nil {
			b.Fatal(err)
		}
		return consumer.Encode(&consumer.Response{Version: 12, Topics: []consumer.TopicData{{Topic: "t",
			Partitions: []consumer.PartitionData{{HighWatermark: l.LogEndOffset(), PreferredReadReplica: -1, Records: r}}}}}, nil)
	}
	ca := testcerts.NewCA(b, "ca")
	pair := ca.Issue(b, pkix.Name{CommonName: "broker"}, 1, "127.0.0.1")
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wrap func(srv, cli net.Conn) (net.Conn, net.Conn)
		send func(c net.Conn, e *consumer.Encoded, buf []byte) error
	}{
		{"sendfile", nil, func(c net.Conn, e *consumer.Encoded, _ []byte) error { return consumer.Send(c, e, consumer.Sendfile) }},
		{"copy", nil, func(c net.Conn, e *consumer.Encoded, _ []byte) error { return consumer.Send(c, e, consumer.Copy) }},
		{"tls", func(srv, cli net.Conn) (net.Conn, net.Conn) {
			return tls.Server(srv, &tls.Config{Certificates: []tls.Certificate{cert}, DynamicRecordSizingDisabled: true}),
				tls.Client(cli, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		}, func(c net.Conn, e *consumer.Encoded, buf []byte) error { return consumer.SendBuffered(c, e, buf) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, cli := tcpPair(b)
			if tc.wrap != nil {
				srv, cli = tc.wrap(srv, cli)
			}
			go io.Copy(io.Discard, cli)
			buf := make([]byte, 0, consumer.BufferedSendSize)
			if err := tc.send(srv, encode(), buf); err != nil { // and the handshake
				b.Fatal(err)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			size := encode().Size()
			b.SetBytes(size)
			b.ReportAllocs()
			t0 := threadCPU(b)
			b.ResetTimer()
			for range b.N {
				if err := tc.send(srv, encode(), buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((threadCPU(b)-t0)/(float64(size)*float64(b.N)/1e9), "sender-cpu-s/GB")
		})
	}
}

func threadCPU(b *testing.B) float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
