package broker

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/sasl"
)

// BenchmarkScramHandshake measures SCRAM-SHA-512 logins on a broker's
// SASL_PLAINTEXT listener, as handshakes per second: each op is a new TCP
// connection, SaslHandshake, the two SaslAuthenticate round trips of
// RFC 5802 and the close, with 8 logins per CPU at once. The client derives the salted password once
// and keeps it (a real client pays 4096 PBKDF2 iterations per login,
// which would measure the client, not the broker); everything the broker
// does per login is in the figure: the nonce, the stored-key check in
// constant time, the server signature, the connection's setup and
// teardown.
//
//	go test -run '^$' -bench ScramHandshake -benchtime 3s -count 5 ./broker/
func BenchmarkScramHandshake(b *testing.B) {
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = ""
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Listeners = []ListenerAddr{{"SASL_PLAINTEXT", "127.0.0.1:0"}}
	cfg.SASL.Mechanisms = []string{sasl.ScramSHA512}
	cfg.SASL.Users = []ScramUserSpec{{"bench", sasl.SHA512, "bench-secret"}}
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		br.Close()
	}()
	addr := br.ListenerAddr("SASL_PLAINTEXT")
	var keys scramKeys
	if err := scramLogin(addr, "bench", "bench-secret", &keys); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8) // 8 logins at once per CPU: the broker, not one client's round trips, is the limit
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := scramLogin(addr, "bench", "bench-secret", &keys); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}

// scramKeys caches the client's keys of one salt and iteration count.
type scramKeys struct {
	mu                    sync.Mutex
	salt                  string
	iters                 int
	clientKey, serverKey  []byte
	storedKey             [sha512.Size]byte
	derivedForSaltAndIter bool
}

func (k *scramKeys) get(pass, salt string, iters int) (clientKey, serverKey []byte, storedKey [sha512.Size]byte, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.derivedForSaltAndIter || k.salt != salt || k.iters != iters {
		raw, err := base64.StdEncoding.DecodeString(salt)
		if err != nil {
			return nil, nil, storedKey, err
		}
		salted, err := pbkdf2.Key(sha512.New, pass, raw, iters, sha512.Size)
		if err != nil {
			return nil, nil, storedKey, err
		}
		k.clientKey = mac(salted, "Client Key")
		k.serverKey = mac(salted, "Server Key")
		k.storedKey = sha512.Sum512(k.clientKey)
		k.salt, k.iters, k.derivedForSaltAndIter = salt, iters, true
	}
	return k.clientKey, k.serverKey, k.storedKey, nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha512.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramLogin logs in once on a new connection and closes it. It checks
// the server's signature, so a broker that skipped the proof check would
// fail it.
func scramLogin(addr, user, pass string, keys *scramKeys) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = sasl.ScramSHA512
	hsResp := kmsg.NewPtrSASLHandshakeResponse()
	if err := roundTrip(rw, 1, hs, hsResp); err != nil {
		return err
	}
	if hsResp.ErrorCode != 0 {
		return fmt.Errorf("SaslHandshake: error %d", hsResp.ErrorCode)
	}
	var nonce [18]byte
	rand.Read(nonce[:])
	bare := "n=" + user + ",r=" + base64.RawStdEncoding.EncodeToString(nonce[:])
	first, err := authenticate(rw, 2, "n,,"+bare)
	if err != nil {
		return err
	}
	var serverNonce, salt string
	iters := 0
	for _, f := range strings.Split(first, ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			serverNonce = f[2:]
		case strings.HasPrefix(f, "s="):
			salt = f[2:]
		case strings.HasPrefix(f, "i="):
			iters, _ = strconv.Atoi(f[2:])
		}
	}
	clientKey, serverKey, storedKey, err := keys.get(pass, salt, iters)
	if err != nil {
		return err
	}
	withoutProof := "c=biws,r=" + serverNonce
	authMsg := bare + "," + first + "," + withoutProof
	sig := mac(storedKey[:], authMsg)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	final, err := authenticate(rw, 3, withoutProof+",p="+base64.StdEncoding.EncodeToString(proof))
	if err != nil {
		return err
	}
	if want := "v=" + base64.StdEncoding.EncodeToString(mac(serverKey, authMsg)); final != want {
		return fmt.Errorf("server signature %q, want %q", final, want)
	}
	return nil
}

func authenticate(rw *bufio.ReadWriter, corr int32, msg string) (string, error) {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SetVersion(1)
	req.SASLAuthBytes = []byte(msg)
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	if err := roundTrip(rw, corr, req, resp); err != nil {
		return "", err
	}
	if resp.ErrorCode != 0 {
		return "", fmt.Errorf("SaslAuthenticate: error %d", resp.ErrorCode)
	}
	return string(resp.SASLAuthBytes), nil
}

// roundTrip writes req with a v1 request header (both requests are not
// flexible at the versions used) and reads the response into resp.
func roundTrip(rw *bufio.ReadWriter, corr int32, req kmsg.Request, resp kmsg.Response) error {
	body := []byte{0, 0, 0, 0}
	body = binary.BigEndian.AppendUint16(body, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(req.GetVersion()))
	body = binary.BigEndian.AppendUint32(body, uint32(corr))
	body = binary.BigEndian.AppendUint16(body, 5)
	body = append(body, "bench"...)
	body = req.AppendTo(body)
	binary.BigEndian.PutUint32(body, uint32(len(body)-4))
	if _, err := rw.Write(body); err != nil {
		return err
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	var size [4]byte
	if _, err := io.ReadFull(rw, size[:]); err != nil {
		return err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rw, frame); err != nil {
		return err
	}
	if len(frame) < 4 || int32(binary.BigEndian.Uint32(frame)) != corr {
		return fmt.Errorf("response to correlation id %d: bad header", corr)
	}
	resp.SetVersion(req.GetVersion())
	return resp.ReadFrom(frame[4:])
}
