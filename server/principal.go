package server

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// PrincipalMapper turns a client certificate's subject DN into a
// principal name, as Kafka's ssl.principal.mapping.rules do
// (--ssl-principal-mapping-rules): a list of rules separated by commas,
// each DEFAULT (the DN as it is) or RULE:pattern/replacement/ with an
// optional L or U after the last slash (lower- or upper-case the result).
// The first rule whose pattern matches the whole DN gives the name; "/" in
// a pattern or replacement is written "\/", and $1, $2... in a replacement
// are the pattern's groups. A DN that no rule matches is refused.
type PrincipalMapper struct {
	rules []principalRule
}

type principalRule struct {
	dflt    bool
	re      *regexp.Regexp
	repl    string
	caseFun func(string) string
}

// ErrNoPrincipalRule: no mapping rule matches a certificate's DN.
var ErrNoPrincipalRule = errors.New("server: no principal mapping rule matches the certificate's subject")

// ParsePrincipalRules parses a rule list; empty is DEFAULT.
func ParsePrincipalRules(s string) (*PrincipalMapper, error) {
	m := &PrincipalMapper{}
	rest := strings.TrimSpace(s)
	if rest == "" {
		rest = "DEFAULT"
	}
	for rest != "" {
		var r principalRule
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			r.dflt = true
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			rest = rest[len("RULE:"):]
			pat, after, ok := cutUnescaped(rest)
			if !ok {
				return nil, fmt.Errorf("principal mapping rule %q: want RULE:pattern/replacement/[LU]", s)
			}
			repl, after, ok := cutUnescaped(after)
			if !ok {
				return nil, fmt.Errorf("principal mapping rule %q: want RULE:pattern/replacement/[LU]", s)
			}
			re, err := regexp.Compile("^(?:" + pat + ")$")
			if err != nil {
				return nil, fmt.Errorf("principal mapping rule pattern %q: %w", pat, err)
			}
			r.re, r.repl = re, groupRefs(repl)
			switch {
			case strings.HasPrefix(after, "L"):
				r.caseFun, after = strings.ToLower, after[1:]
			case strings.HasPrefix(after, "U"):
				r.caseFun, after = strings.ToUpper, after[1:]
			}
			rest = after
		default:
			return nil, fmt.Errorf("principal mapping rules %q: want DEFAULT or RULE:pattern/replacement/[LU] at %q", s, rest)
		}
		m.rules = append(m.rules, r)
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("principal mapping rules %q: want a comma before %q", s, rest)
		}
		rest = strings.TrimLeft(rest[1:], " ")
		if rest == "" {
			return nil, fmt.Errorf("principal mapping rules %q: a rule is missing after the last comma", s)
		}
	}
	return m, nil
}

// cutUnescaped returns s up to the first "/" not written "\/" (with each
// "\/" made "/"), and what follows that slash.
func cutUnescaped(s string) (before, after string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '/':
			b.WriteByte('/')
			i++
		case s[i] == '/':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

// groupRefs writes $N as ${N}, so that the digits end the reference as
// they do in Kafka's (Java's) replacements.
func groupRefs(repl string) string {
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		if repl[i] == '$' && i+1 < len(repl) && repl[i+1] >= '0' && repl[i+1] <= '9' {
			j := i + 1
			for j < len(repl) && repl[j] >= '0' && repl[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(repl[i+1 : j])
			fmt.Fprintf(&b, "${%d}", n)
			i = j - 1
			continue
		}
		b.WriteByte(repl[i])
	}
	return b.String()
}

// Map returns the principal name for a DN (without "User:").
func (m *PrincipalMapper) Map(dn string) (string, error) {
	if m == nil {
		return dn, nil
	}
	for _, r := range m.rules {
		if r.dflt {
			return dn, nil
		}
		if !r.re.MatchString(dn) {
			continue
		}
		out := r.re.ReplaceAllString(dn, r.repl)
		if r.caseFun != nil {
			out = r.caseFun(out)
		}
		return out, nil
	}
	return "", fmt.Errorf("%w: %q", ErrNoPrincipalRule, dn)
}
