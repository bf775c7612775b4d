package test

import (
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"

	"github.com/runnel-io/runnel/internal/testcerts"
)

// TestKafkaPythonSSL: kafka-python, a client that is not ours, produces
// and consumes over an SSL listener that requires client certificates,
// verifying the broker's certificate and host name against the CA; and is
// refused without a certificate of its own.
func TestKafkaPythonSSL(t *testing.T) {
	py := offsetsPython(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "runnel test ca")
	files := ca.Write(t, dir, "broker", ca.Issue(t, pkix.Name{CommonName: "broker1"}, 5000, "127.0.0.1", "localhost"))
	client := ca.Write(t, dir, "client", ca.Issue(t, pkix.Name{CommonName: "py"}, 5001))
	ssl := freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = []string{"--listeners", "PLAINTEXT://" + b.addr + ",SSL://" + ssl,
		"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-file", files.CA, "--tls-client-auth", "require"}
	b.start()
	t.Cleanup(func() { b.kill() })

	out, err := exec.Command(py, "testdata/ssl_client.py", ssl, files.CA, client.Cert, client.Key).CombinedOutput()
	if err != nil {
		t.Fatalf("kafka-python over SSL with a client certificate: %v\n%s\nbroker:\n%s", err, out, b.logs())
	}
	var got struct {
		Sent     int      `json:"sent"`
		Received []string `json:"received"`
	}
	if err := json.Unmarshal(out[lastLine(out):], &got); err != nil {
		t.Fatalf("kafka-python output %q: %v", out, err)
	}
	if len(got.Received) != 20 {
		t.Fatalf("kafka-python read %d of 20 records back: %v", len(got.Received), got.Received)
	}
	for i, v := range got.Received {
		if want := fmt.Sprintf("value %d", i); v != want {
			t.Errorf("record %d: %q, want %q", i, v, want)
		}
	}
	if out, err := exec.Command(py, "testdata/ssl_client.py", ssl, files.CA).CombinedOutput(); err == nil {
		t.Errorf("kafka-python without a client certificate was served:\n%s", out)
	}
}

// lastLine returns where the last non-empty line of b starts.
func lastLine(b []byte) int {
	end := len(b)
	for end > 0 && (b[end-1] == '\n' || b[end-1] == '\r') {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i + 1
		}
	}
	return 0
}
