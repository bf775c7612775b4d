package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
)

const userUsage = `Usage: runnel user COMMAND [flags]

Manage SCRAM users (AlterUserScramCredentials, DescribeUserScramCredentials)
on any Kafka-compatible broker. Brokers store a salted credential, never the
password.

Commands:
  create NAME     create a user, or set a new password for it
  delete NAME     delete a user's credentials
  list [NAME...]  list users with their mechanisms and iteration counts

Run runnel user COMMAND --help for the flags of each.
`

// User runs runnel user: create, delete and list SCRAM users.
func User(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return errors.New("user: missing command (create, delete or list)")
	}
	switch args[0] {
	case "create":
		return userCreate(args[1:], stdin, stdout, stderr)
	case "delete":
		return userDelete(args[1:], stdout, stderr)
	case "list":
		return userList(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, userUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, userUsage)
	return fmt.Errorf("user: unknown command %q", args[0])
}

func parseScramMechanism(s string) (kadm.ScramMechanism, error) {
	switch s {
	case "SCRAM-SHA-256":
		return kadm.ScramSha256, nil
	case "SCRAM-SHA-512":
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", s)
}

func userAdmin(conn *Conn) (context.Context, *kadm.Client, func(), error) {
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return nil, nil, nil, err
	}
	return ctx, kadm.NewClient(cl), done, nil
}

func userCreate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel user create", "runnel user create NAME [flags]",
		"Create a SCRAM user, or give it a new password. Without --password the password\nis the first line of stdin.", stderr)
	conn := ConnFlags(fs)
	mechanism := fs.String("mechanism", "SCRAM-SHA-512", "SCRAM mechanism of the credential: SCRAM-SHA-512 or SCRAM-SHA-256")
	iterations := fs.Int("iterations", 4096, "iterations of the salted password, 4096 to 16384")
	password := fs.String("password", "", "the password (visible to other local users in the process list: prefer stdin)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "user NAME"); err != nil {
		return err
	}
	mech, err := parseScramMechanism(*mechanism)
	if err != nil {
		return err
	}
	if *iterations < 4096 || *iterations > 16384 {
		return fmt.Errorf("--iterations %d: want 4096 to 16384", *iterations)
	}
	pass := *password
	if pass == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		pass = strings.TrimRight(line, "\r\n")
	}
	if pass == "" {
		return errors.New("no password: give --password or a line on stdin")
	}
	ctx, adm, done, err := userAdmin(conn)
	if err != nil {
		return err
	}
	defer done()
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: pos[0], Mechanism: mech, Iterations: int32(*iterations), Password: pass}})
	if err != nil {
		return fmt.Errorf("create user %s: %w", pos[0], err)
	}
	if err := alterError(res); err != nil {
		return fmt.Errorf("create user %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "created user %s (%s, %d iterations)\n", pos[0], mech, *iterations)
	return nil
}

func alterError(res kadm.AlteredUserSCRAMs) error {
	for _, r := range res.Sorted() {
		if r.Err != nil {
			if r.ErrMessage != "" {
				return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
			}
			return r.Err
		}
	}
	return nil
}

func userDelete(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel user delete", "runnel user delete NAME [flags]",
		"Delete a user's SCRAM credentials: every mechanism's, or --mechanism's only.", stderr)
	conn := ConnFlags(fs)
	mechanism := fs.String("mechanism", "", "delete only this mechanism's credential (default: all)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "user NAME"); err != nil {
		return err
	}
	name := pos[0]
	var mechs []kadm.ScramMechanism
	if *mechanism != "" {
		m, err := parseScramMechanism(*mechanism)
		if err != nil {
			return err
		}
		mechs = append(mechs, m)
	}
	ctx, adm, done, err := userAdmin(conn)
	if err != nil {
		return err
	}
	defer done()
	if len(mechs) == 0 {
		desc, err := adm.DescribeUserSCRAMs(ctx, name)
		if err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		d := desc[name]
		if d.Err != nil {
			return fmt.Errorf("delete user %s: %w", name, d.Err)
		}
		for _, ci := range d.CredInfos {
			mechs = append(mechs, ci.Mechanism)
		}
	}
	var del []kadm.DeleteSCRAM
	for _, m := range mechs {
		del = append(del, kadm.DeleteSCRAM{User: name, Mechanism: m})
	}
	res, err := adm.AlterUserSCRAMs(ctx, del, nil)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	if err := alterError(res); err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	names := make([]string, len(mechs))
	for i, m := range mechs {
		names[i] = m.String()
	}
	fmt.Fprintf(stdout, "deleted user %s (%s)\n", name, strings.Join(names, ", "))
	return nil
}

func userList(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel user list", "runnel user list [NAME...] [flags]",
		"List SCRAM users (all, or those named) with each credential's mechanism and\niteration count.", stderr)
	conn := ConnFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	ctx, adm, done, err := userAdmin(conn)
	if err != nil {
		return err
	}
	defer done()
	desc, err := adm.DescribeUserSCRAMs(ctx, pos...)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
	var errs []error
	for _, d := range desc.Sorted() {
		if d.Err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", d.User, d.Err))
			continue
		}
		for _, ci := range d.CredInfos {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", d.User, ci.Mechanism, ci.Iterations)
		}
	}
	tw.Flush()
	return errors.Join(errs...)
}
