package server

import (
	"sort"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/sasl"
)

// scramMeta keeps SCRAM credentials in memory over the fake metadata.
type scramMeta struct {
	*fakeMeta
	mu     sync.Mutex
	creds  map[cluster.ScramUser]cluster.ScramCredential
	secret []byte
	alters int
}

func (m *scramMeta) ScramCredential(user string, mech int8) (cluster.ScramCredential, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.creds[cluster.ScramUser{User: user, Mechanism: mech}]
	return c, ok
}

func (m *scramMeta) ScramCredentials() []cluster.ScramCredential {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []cluster.ScramCredential
	for _, c := range m.creds {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].User < out[j].User || out[i].User == out[j].User && out[i].Mechanism < out[j].Mechanism
	})
	return out
}

func (m *scramMeta) ScramSecret() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.secret
}

func (m *scramMeta) AlterScramCredentials(c cluster.AlterScramCredentials) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.alters++
	for _, d := range c.Deletions {
		delete(m.creds, d)
	}
	for _, u := range c.Upsertions {
		m.creds[cluster.ScramUser{User: u.User, Mechanism: u.Mechanism}] = u
	}
	if m.secret == nil {
		m.secret = c.Secret
	}
	return nil
}

func upsertion(name string, mech int8, iter int32, password string) kmsg.AlterUserSCRAMCredentialsRequestUpsertion {
	u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	m := sasl.ScramMechanism(mech)
	u.Name, u.Mechanism, u.Iterations, u.Salt = name, mech, iter, []byte("salt-"+name)
	if m.Valid() && iter > 0 {
		u.SaltedPassword = m.SaltPassword(password, u.Salt, int(iter))
	}
	return u
}

func deletion(name string, mech int8) kmsg.AlterUserSCRAMCredentialsRequestDeletion {
	d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	d.Name, d.Mechanism = name, mech
	return d
}

func resultCodes(resp *kmsg.AlterUserSCRAMCredentialsResponse) map[string]int16 {
	out := map[string]int16{}
	for _, r := range resp.Results {
		out[r.User] = r.ErrorCode
	}
	return out
}

// TestAlterDescribeUserScramCredentials: Kafka's error codes for each bad
// entry; a user refused anywhere in the request changes nowhere; the
// stored credential checks the password; describe lists mechanisms and
// iterations, RESOURCE_NOT_FOUND and DUPLICATE_RESOURCE as Kafka does.
func TestAlterDescribeUserScramCredentials(t *testing.T) {
	ts := newTestServer(t, Config{})
	meta := &scramMeta{fakeMeta: ts.meta, creds: map[cluster.ScramUser]cluster.ScramCredential{}}
	ts.Server.meta = meta

	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{
		upsertion("alice", 2, 8192, "secret"),
		upsertion("alice", 1, 4096, "secret"),
		upsertion("few", 1, 4095, "x"),
		upsertion("many", 2, 16385, "x"),
		upsertion("md5", 3, 4096, "x"),
		upsertion("", 1, 4096, "x"),
		upsertion("twice", 1, 4096, "x"),
		upsertion("twice", 1, 8192, "x"),
		upsertion("mixed", 1, 4096, "x"),
	}
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{deletion("ghost", 1), deletion("mixed", 2)}
	got := resultCodes(ts.call(t, req).(*kmsg.AlterUserSCRAMCredentialsResponse))
	want := map[string]int16{"alice": 0, "few": kerr.UnacceptableCredential.Code, "many": kerr.UnacceptableCredential.Code,
		"md5": kerr.UnsupportedSaslMechanism.Code, "": kerr.UnacceptableCredential.Code, "twice": kerr.DuplicateResource.Code,
		"ghost": kerr.ResourceNotFound.Code, "mixed": kerr.ResourceNotFound.Code}
	if len(got) != len(want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	for u, c := range want {
		if got[u] != c {
			t.Errorf("user %q: code %d, want %d", u, got[u], c)
		}
	}
	if _, ok := meta.ScramCredential("mixed", 1); ok {
		t.Error("a user refused for its deletion got its upsertion")
	}
	if meta.alters != 1 || len(meta.secret) != 32 {
		t.Errorf("%d proposals, secret %x", meta.alters, meta.secret)
	}
	c, ok := clusterCredentials{meta}.ScramCredential("alice", sasl.SHA512)
	if !ok || c.Iterations != 8192 {
		t.Fatalf("alice: %+v %v", c, ok)
	}
	conv, _ := sasl.NewConversation(sasl.Plain, sasl.Options{Credentials: clusterCredentials{meta}})
	if _, err := conv.Next([]byte("\x00alice\x00secret")); err != nil {
		t.Fatalf("the stored credential does not check the password: %v", err)
	}

	describe := func(users ...string) *kmsg.DescribeUserSCRAMCredentialsResponse {
		r := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		for _, u := range users {
			ru := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
			ru.Name = u
			r.Users = append(r.Users, ru)
		}
		return ts.call(t, r).(*kmsg.DescribeUserSCRAMCredentialsResponse)
	}
	all := describe()
	if len(all.Results) != 1 || all.Results[0].User != "alice" || len(all.Results[0].CredentialInfos) != 2 ||
		all.Results[0].CredentialInfos[0].Mechanism != 1 || all.Results[0].CredentialInfos[1].Iterations != 8192 {
		t.Fatalf("describe all: %+v", all.Results)
	}
	some := describe("alice", "nobody", "dup", "dup")
	codes := map[string]int16{}
	for _, r := range some.Results {
		codes[r.User] = r.ErrorCode
	}
	if len(some.Results) != 3 || codes["alice"] != 0 || codes["nobody"] != kerr.ResourceNotFound.Code || codes["dup"] != kerr.DuplicateResource.Code {
		t.Fatalf("describe some: %+v", some.Results)
	}

	del := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	del.Deletions = append(del.Deletions, deletion("alice", 1))
	if got := resultCodes(ts.call(t, del).(*kmsg.AlterUserSCRAMCredentialsResponse)); got["alice"] != 0 {
		t.Fatalf("delete: %v", got)
	}
	if _, ok := meta.ScramCredential("alice", 1); ok {
		t.Fatal("deleted credential remains")
	}
}
