package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const quotaUsage = `Usage: runnel quota COMMAND [flags]

Manage client quotas (AlterClientQuotas, DescribeClientQuotas) on any
Kafka-compatible broker: producer and consumer byte rates and request
percentages, set on a user, a client id, both, or their defaults.

Commands:
  alter     set or delete the quotas of one entity
  describe  list quotas, all or those of the entities the flags select

Run runnel quota COMMAND --help for the flags of each.
`

// Quota runs runnel quota: alter and describe client quotas.
func Quota(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, quotaUsage)
		return errors.New("quota: missing command (alter or describe)")
	}
	switch args[0] {
	case "alter", "describe":
		return quotaRun(args[0], args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, quotaUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, quotaUsage)
	return fmt.Errorf("quota: unknown command %q", args[0])
}

// quotaPart is how the flags name one entity type: a name, the default
// entity, or (describe) any.
type quotaPart struct {
	typ         string
	name        *string
	isDefault   *bool
	any         *bool
	nameFlag    string
	defaultFlag string
}

func addQuotaPart(fs *flag.FlagSet, cmd, typ, flagName, what string) *quotaPart {
	p := &quotaPart{typ: typ, nameFlag: flagName, defaultFlag: flagName + "-default"}
	p.name = fs.String(flagName, "", "the "+what+" `NAME`")
	p.isDefault = fs.Bool(p.defaultFlag, false, "the default "+what+" (every "+what+" without a quota of its own)")
	if cmd == "describe" {
		p.any = fs.Bool("all-"+flagName+"s", false, "every "+what+", named or default")
	}
	return p
}

// set reports whether the flags name this part, and checks they name it
// once.
func (p *quotaPart) set() (bool, error) {
	n := 0
	for _, b := range []bool{*p.name != "", *p.isDefault, p.any != nil && *p.any} {
		if b {
			n++
		}
	}
	if n > 1 {
		return false, fmt.Errorf("--%s, --%s and --all-%ss are exclusive", p.nameFlag, p.defaultFlag, p.nameFlag)
	}
	return n == 1, nil
}

func (p *quotaPart) entityName() *string {
	if *p.isDefault {
		return nil
	}
	return p.name
}

func quotaRun(cmd string, args []string, stdout, stderr io.Writer) error {
	about := map[string]string{
		"alter":    "Set or delete the quotas of one entity: a user, a client id, or both (with\n--user-default and --client-id-default for the defaults). Byte rates are bytes\nper second; a request percentage is percent of one request thread's time.",
		"describe": "List client quotas: every one, or those of the entities the flags select;\n--strict leaves out entities with parts the flags do not name.",
	}[cmd]
	fs := NewFlagSet("runnel quota "+cmd, "runnel quota "+cmd+" [flags]", about, stderr)
	conn := ConnFlags(fs)
	userPart := addQuotaPart(fs, cmd, "user", "user", "user")
	clientPart := addQuotaPart(fs, cmd, "client-id", "client-id", "client id")
	var producer, consumer, request *string
	var deletes listValue
	var validate, strict *bool
	if cmd == "alter" {
		producer = fs.String("producer-byte-rate", "", "set producer_byte_rate to `BYTES` per second")
		consumer = fs.String("consumer-byte-rate", "", "set consumer_byte_rate to `BYTES` per second")
		request = fs.String("request-percentage", "", "set request_percentage to `PERCENT`")
		fs.Var(&deletes, "delete", "delete the quota `KEY` (producer_byte_rate, consumer_byte_rate, request_percentage; repeatable)")
		validate = fs.Bool("validate-only", false, "check the change without making it")
	} else {
		strict = fs.Bool("strict", false, "only entities with exactly the parts named")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos); err != nil {
		return err
	}
	hasUser, err := userPart.set()
	if err != nil {
		return err
	}
	hasClient, err := clientPart.set()
	if err != nil {
		return err
	}
	var alter *kmsg.AlterClientQuotasRequest
	if cmd == "alter" {
		if !hasUser && !hasClient {
			return errors.New("name an entity: --user, --user-default, --client-id or --client-id-default")
		}
		e := kmsg.NewAlterClientQuotasRequestEntry()
		for _, p := range []*quotaPart{userPart, clientPart} {
			if ok, _ := p.set(); ok {
				e.Entity = append(e.Entity, kmsg.AlterClientQuotasRequestEntryEntity{Type: p.typ, Name: p.entityName()})
			}
		}
		for _, kv := range []struct {
			key string
			v   *string
		}{{"producer_byte_rate", producer}, {"consumer_byte_rate", consumer}, {"request_percentage", request}} {
			if *kv.v == "" {
				continue
			}
			f, err := strconv.ParseFloat(*kv.v, 64)
			if err != nil {
				return fmt.Errorf("--%s %q: want a number", kv.key, *kv.v)
			}
			e.Ops = append(e.Ops, kmsg.AlterClientQuotasRequestEntryOp{Key: kv.key, Value: f})
		}
		for _, k := range deletes {
			e.Ops = append(e.Ops, kmsg.AlterClientQuotasRequestEntryOp{Key: k, Remove: true})
		}
		if len(e.Ops) == 0 {
			return errors.New("nothing to change: --producer-byte-rate, --consumer-byte-rate, --request-percentage or --delete")
		}
		alter = kmsg.NewPtrAlterClientQuotasRequest()
		alter.Entries, alter.ValidateOnly = []kmsg.AlterClientQuotasRequestEntry{e}, *validate
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	if alter != nil {
		resp, err := alter.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if len(resp.Entries) != 1 {
			return fmt.Errorf("the broker answered %d entries for 1", len(resp.Entries))
		}
		if err := codeErr(resp.Entries[0].ErrorCode, resp.Entries[0].ErrorMessage); err != nil {
			return err
		}
		verb := "altered"
		if *validate {
			verb = "valid:"
		}
		fmt.Fprintf(stdout, "%s %s\n", verb, entityString(alter.Entries[0].Entity))
		return nil
	}
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.Strict = *strict
	for _, p := range []*quotaPart{userPart, clientPart} {
		ok, _ := p.set()
		if !ok {
			continue
		}
		c := kmsg.NewDescribeClientQuotasRequestComponent()
		c.EntityType = p.typ
		switch {
		case *p.any:
			c.MatchType = 2
		case *p.isDefault:
			c.MatchType = 1
		default:
			c.MatchType, c.Match = 0, p.name
		}
		req.Components = append(req.Components, c)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := codeErr(resp.ErrorCode, resp.ErrorMessage); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY\tKEY\tVALUE")
	for _, e := range resp.Entries {
		var parts []kmsg.AlterClientQuotasRequestEntryEntity
		for _, p := range e.Entity {
			parts = append(parts, kmsg.AlterClientQuotasRequestEntryEntity{Type: p.Type, Name: p.Name})
		}
		for _, v := range e.Values {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", entityString(parts), v.Key, strconv.FormatFloat(v.Value, 'f', -1, 64))
		}
	}
	return tw.Flush()
}

// entityString writes an entity as Kafka's tools do:
// user=alice,client-id=<default>.
func entityString(parts []kmsg.AlterClientQuotasRequestEntryEntity) string {
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += ","
		}
		n := "<default>"
		if p.Name != nil {
			n = *p.Name
		}
		s += p.Type + "=" + n
	}
	return s
}
