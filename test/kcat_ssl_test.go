package test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-io/runnel/internal/testcerts"
)

// TestKcatSSL: kcat (librdkafka) produces and consumes over an SSL
// listener that requires client certificates, next to a plaintext one on
// the same broker; the broker's certificate files replaced and a SIGHUP
// make the next connection see the new certificate.
func TestKcatSSL(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "runnel test ca")
	files := ca.Write(t, dir, "broker", ca.Issue(t, pkix.Name{CommonName: "broker1"}, 2000, "127.0.0.1", "localhost"))
	client := ca.Issue(t, pkix.Name{CommonName: "kcat"}, 2001)
	cfiles := ca.Write(t, dir, "client", client)
	sslAddr := freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = []string{"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-file", files.CA,
		"--tls-client-auth", "require", "--listeners", "PLAINTEXT://" + b.addr + ",SSL://" + sslAddr}
	b.start()
	t.Cleanup(func() { b.kill() })
	ssl := []string{"-b", sslAddr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + files.CA,
		"-X", "ssl.certificate.location=" + cfiles.Cert, "-X", "ssl.key.location=" + cfiles.Key}

	const topic = "kcat-ssl"
	var in, want strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&in, "key-%d:value %d\n", i, i)
		fmt.Fprintf(&want, "%d key-%d value %d\n", i, i, i)
	}
	kcat(t, in.String(), append([]string{"-P", "-t", topic, "-K:"}, ssl...)...)
	got := kcat(t, "", append([]string{"-C", "-t", topic, "-o", "beginning", "-e", "-f", `%o %k %s\n`}, ssl...)...)
	if got != want.String() {
		t.Fatalf("kcat over SSL consumed:\n%s\nwant:\n%s", got, want.String())
	}
	if all := kcat(t, "", append([]string{"-L"}, ssl...)...); !strings.Contains(all, "broker 1 at "+sslAddr) {
		t.Errorf("kcat -L over SSL does not name the SSL address %s:\n%s", sslAddr, all)
	}
	if all := kcat(t, "", "-L", "-b", b.addr); !strings.Contains(all, "broker 1 at "+b.addr) {
		t.Errorf("kcat -L over PLAINTEXT does not name the plaintext address %s:\n%s", b.addr, all)
	}
	if got := kcat(t, "", "-C", "-b", b.addr, "-t", topic, "-o", "49", "-e", "-f", `%o %k %s\n`); got != "49 key-49 value 49\n" {
		t.Errorf("kcat over PLAINTEXT consumed %q", got)
	}

	// SIGHUP reloads the replaced files before any new handshake.
	ca.Write(t, filepath.Dir(files.Cert), "broker", ca.Issue(t, pkix.Name{CommonName: "broker1"}, 2002, "127.0.0.1", "localhost"))
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.logs(), "serial=2002") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged after SIGHUP:\n%s", b.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", sslAddr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); s != 2002 {
		t.Fatalf("serial %d after SIGHUP, want 2002", s)
	}
}
