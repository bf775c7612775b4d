package broker

import (
	"fmt"
	"slices"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/server"
)

// AuthorizerConfig configures ACL authorization.
type AuthorizerConfig struct {
	// Enabled checks every request against the ACLs in the cluster
	// state (--authorizer). Off: every request is allowed and the ACL
	// APIs answer SECURITY_DISABLED.
	Enabled bool
	// SuperUsers are principals allowed everything, in Kafka's form
	// "User:a;User:b" (--super-users).
	SuperUsers string
	// AllowEveryoneIfNoACL allows requests on resources no ACL names
	// (--allow-everyone-if-no-acl-found); default false.
	AllowEveryoneIfNoACL bool
}

func (c AuthorizerConfig) validate() error {
	if _, err := authz.ParseSuperUsers(c.SuperUsers); err != nil {
		return fmt.Errorf("--super-users: %w", err)
	}
	return nil
}

// startAuthorizer makes the authorizer, kept up to date with the ACLs of
// the cluster state, or returns nil when authorization is off. The
// broker's own principal on its inter-broker listener is a super user,
// so that its replica fetches are allowed wherever the other brokers
// share it; brokers with principals of their own (one certificate each)
// list one another in --super-users, as Kafka requires of every broker.
func (b *Broker) startAuthorizer() (*authz.Authorizer, error) {
	c := b.cfg.Authorizer
	if !c.Enabled {
		return nil, nil
	}
	supers, err := authz.ParseSuperUsers(c.SuperUsers)
	if err != nil {
		return nil, err
	}
	own, err := b.ownPrincipal()
	if err != nil {
		return nil, err
	}
	if own != "" && !slices.Contains(supers, own) {
		supers = append(supers, own)
	}
	if own == "" {
		b.log.Warn("the inter-broker listener proves no principal: replication needs CLUSTER_ACTION for User:ANONYMOUS "+
			"(--super-users or an ACL)", "listener", b.inter)
	}
	az := authz.New(authz.Config{SuperUsers: supers, AllowIfNoACL: c.AllowEveryoneIfNoACL})
	b.node.FSM().OnAclsChanged(func(acls []cluster.AclBinding) { az.Update(server.AclBindings(acls)) })
	b.log.Info("authorizer on", "super_users", supers, "allow_everyone_if_no_acl_found", c.AllowEveryoneIfNoACL)
	return az, nil
}

// ownPrincipal is the principal this broker's replica fetchers present:
// its SASL user on a SASL inter-broker listener, its certificate's
// subject on an SSL one, none on a plaintext one.
func (b *Broker) ownPrincipal() (string, error) {
	p := b.listener(b.inter).protocol
	switch {
	case p.isSASL():
		users, err := b.cfg.SASL.scramUsers()
		if err != nil {
			return "", err
		}
		for _, u := range users {
			if b.cfg.SASL.InterBrokerUser == "" || u.Name == b.cfg.SASL.InterBrokerUser {
				return "User:" + u.Name, nil
			}
		}
	case p.isTLS() && b.certs != nil:
		if leaf := b.certs.Leaf(); leaf != nil {
			m, err := server.ParsePrincipalRules(b.cfg.TLS.PrincipalMappingRules)
			if err != nil {
				return "", err
			}
			name, err := m.Map(leaf.Subject.String())
			if err != nil {
				return "", fmt.Errorf("this broker's own certificate: %w", err)
			}
			return "User:" + name, nil
		}
	}
	return "", nil
}
