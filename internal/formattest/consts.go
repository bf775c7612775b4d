package formattest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Consts returns, for the non-test Go files of dir, every constant or
// variable initialised with a string or character literal whose name keep
// accepts, by name, with the literal's value unquoted.
func Consts(dir string, keep func(name string) bool) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return nil, err
		}
		var bad error
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, id := range vs.Names {
				if i >= len(vs.Values) || !keep(id.Name) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || (lit.Kind != token.STRING && lit.Kind != token.CHAR) {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil && bad == nil {
					bad = fmt.Errorf("formattest: %s: %s = %s: %w", name, id.Name, lit.Value, err)
				}
				out[id.Name] = v
			}
			return true
		})
		if bad != nil {
			return nil, bad
		}
	}
	return out, nil
}
