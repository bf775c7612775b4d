package server

import (
	"crypto/rand"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/sasl"
)

// clusterCredentials are the SCRAM credentials of the cluster state, for
// the SASL exchanges.
type clusterCredentials struct{ meta Cluster }

func (c clusterCredentials) ScramCredential(user string, m sasl.ScramMechanism) (sasl.Credential, bool) {
	cr, ok := c.meta.ScramCredential(user, int8(m))
	if !ok {
		return sasl.Credential{}, false
	}
	return sasl.Credential{Salt: cr.Salt, Iterations: int(cr.Iterations), StoredKey: cr.StoredKey, ServerKey: cr.ServerKey}, true
}

// processSecret stands in for the cluster's SCRAM secret until a broker
// has set one.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// saslOptions are the options of a new exchange on a listener: its own
// credentials and secret if it names them, else the cluster's.
func (s *Server) saslOptions(cfg *SASL) sasl.Options {
	o := sasl.Options{Credentials: cfg.Credentials, OAuth: cfg.OAuth}
	if o.Credentials == nil {
		o.Credentials = clusterCredentials{s.meta}
	}
	if cfg.Secret != nil {
		o.Secret = cfg.Secret()
	} else if o.Secret = s.meta.ScramSecret(); len(o.Secret) == 0 {
		o.Secret = processSecret()
	}
	return o
}

func strPtr(s string) *string { return &s }

// handleDescribeUserScramCredentials lists the mechanisms and iteration
// counts of users' credentials (never more): every user's when the
// request names none; RESOURCE_NOT_FOUND for a named user without any,
// DUPLICATE_RESOURCE for a user named twice, as Kafka answers.
func (s *Server) handleDescribeUserScramCredentials(r *kmsg.DescribeUserSCRAMCredentialsRequest) *kmsg.DescribeUserSCRAMCredentialsResponse {
	resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
	byUser := map[string][]kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{}
	var users []string
	for _, c := range s.meta.ScramCredentials() {
		if _, ok := byUser[c.User]; !ok {
			users = append(users, c.User)
		}
		info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
		info.Mechanism, info.Iterations = c.Mechanism, c.Iterations
		byUser[c.User] = append(byUser[c.User], info)
	}
	if len(r.Users) > 0 {
		named := map[string]int{}
		users = users[:0]
		for _, u := range r.Users {
			if named[u.Name]++; named[u.Name] == 1 {
				users = append(users, u.Name)
			}
		}
		for _, u := range users {
			res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			res.User = u
			switch {
			case named[u] > 1:
				res.ErrorCode = kerr.DuplicateResource.Code
				res.ErrorMessage = strPtr("Cannot describe SCRAM credentials for the same user twice in a single request: " + u)
			case len(byUser[u]) == 0:
				res.ErrorCode = kerr.ResourceNotFound.Code
				res.ErrorMessage = strPtr("Attempt to describe a user credential that does not exist: " + u)
			default:
				res.CredentialInfos = byUser[u]
			}
			s.m.errorCode("DescribeUserScramCredentials", res.ErrorCode)
			resp.Results = append(resp.Results, res)
		}
		return resp
	}
	for _, u := range users {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User, res.CredentialInfos = u, byUser[u]
		resp.Results = append(resp.Results, res)
	}
	return resp
}

// handleAlterUserScramCredentials validates each user's deletions and
// upsertions as Kafka does and commits the valid ones in one command
// through the Raft leader. A user whose change is refused keeps every
// credential it had; the answer holds one result per user.
func (s *Server) handleAlterUserScramCredentials(r *kmsg.AlterUserSCRAMCredentialsRequest) *kmsg.AlterUserSCRAMCredentialsResponse {
	type userResult struct {
		code int16
		msg  string
	}
	var order []string
	results := map[string]*userResult{}
	result := func(u string) *userResult {
		if results[u] == nil {
			results[u] = &userResult{}
			order = append(order, u)
		}
		return results[u]
	}
	fail := func(u string, code int16, msg string) {
		if res := result(u); res.code == 0 {
			res.code, res.msg = code, msg
		}
	}
	pairs := map[cluster.ScramUser]int{}
	for _, d := range r.Deletions {
		pairs[cluster.ScramUser{User: d.Name, Mechanism: d.Mechanism}]++
	}
	for _, u := range r.Upsertions {
		pairs[cluster.ScramUser{User: u.Name, Mechanism: u.Mechanism}]++
	}
	check := func(name string, mech int8) bool {
		result(name)
		m := sasl.ScramMechanism(mech)
		switch {
		case name == "":
			fail(name, kerr.UnacceptableCredential.Code, "Username must not be empty")
		case pairs[cluster.ScramUser{User: name, Mechanism: mech}] > 1:
			fail(name, kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		case !m.Valid():
			fail(name, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		default:
			return true
		}
		return false
	}
	var cmd cluster.AlterScramCredentials
	for _, d := range r.Deletions {
		if !check(d.Name, d.Mechanism) {
			continue
		}
		if _, ok := s.meta.ScramCredential(d.Name, d.Mechanism); !ok {
			fail(d.Name, kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist")
			continue
		}
		cmd.Deletions = append(cmd.Deletions, cluster.ScramUser{User: d.Name, Mechanism: d.Mechanism})
	}
	for _, u := range r.Upsertions {
		if !check(u.Name, u.Mechanism) {
			continue
		}
		m := sasl.ScramMechanism(u.Mechanism)
		switch {
		case u.Iterations < sasl.MinIterations:
			fail(u.Name, kerr.UnacceptableCredential.Code, "Too few iterations")
			continue
		case u.Iterations > sasl.MaxIterations:
			fail(u.Name, kerr.UnacceptableCredential.Code, "Too many iterations")
			continue
		case len(u.Salt) == 0:
			fail(u.Name, kerr.UnacceptableCredential.Code, "Salt must not be empty")
			continue
		case len(u.SaltedPassword) != m.Size():
			fail(u.Name, kerr.UnacceptableCredential.Code, "The salted password is not the size of the mechanism's hash")
			continue
		}
		c := m.FromSaltedPassword(u.SaltedPassword, u.Salt, int(u.Iterations))
		cmd.Upsertions = append(cmd.Upsertions, cluster.ScramCredential{User: u.Name, Mechanism: u.Mechanism, Salt: c.Salt,
			Iterations: u.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	// A user refused anywhere changes nowhere.
	cmd.Deletions = slices.DeleteFunc(cmd.Deletions, func(d cluster.ScramUser) bool { return results[d.User].code != 0 })
	cmd.Upsertions = slices.DeleteFunc(cmd.Upsertions, func(c cluster.ScramCredential) bool { return results[c.User].code != 0 })
	if len(cmd.Deletions)+len(cmd.Upsertions) > 0 {
		if len(s.meta.ScramSecret()) == 0 {
			cmd.Secret = newScramSecret()
		}
		if err := s.meta.AlterScramCredentials(cmd); err != nil {
			code := errorCode(err)
			for _, u := range order {
				fail(u, code, err.Error())
			}
		}
	}
	resp := kmsg.NewPtrAlterUserSCRAMCredentialsResponse()
	for _, u := range order {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User, res.ErrorCode = u, results[u].code
		if res.ErrorCode != 0 {
			res.ErrorMessage = strPtr(results[u].msg)
		}
		s.m.errorCode("AlterUserScramCredentials", res.ErrorCode)
		resp.Results = append(resp.Results, res)
	}
	return resp
}

// newScramSecret makes a cluster SCRAM secret.
func newScramSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}
