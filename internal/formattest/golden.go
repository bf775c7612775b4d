package formattest

import (
	"bytes"
	"encoding/hex"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Golden compares got with the golden file at path and returns the file's
// bytes. With update set it first writes got there. A difference fails the
// test (t.Errorf), showing both as text or, for binary bytes, in hex.
func Golden(t testing.TB, path string, got []byte, update bool) []byte {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed:\n got %s\nwant %s", path, show(got), show(want))
	}
	return want
}

func show(b []byte) string {
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) && r != '\n' }) {
		return strconv.Quote(string(b))
	}
	return "0x" + hex.EncodeToString(b)
}

// JSONFields returns the names encoding/json gives a struct's fields, in
// order (v may be a pointer to the struct); fields tagged "-" are left out.
func JSONFields(v any) []string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = t.Field(i).Name
		}
		out = append(out, name)
	}
	return out
}
