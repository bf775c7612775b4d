package main

import "testing"

func TestSummary(t *testing.T) {
	for _, c := range []struct{ name, out, want string }{
		{"no medians line", "one\ntwo\n", "one\ntwo\n"},
		{"starts with it", "medians over 3 runs:\na 1\n", "medians over 3 runs:\na 1\n"},
		{"progress before it", "run 1\nrun 2\nmedians over 3 runs:\na 1\n", "medians over 3 runs:\na 1\n"},
		{"the word later in a line", "noise\nmedians over 3 runs:\na 1\nb (medians of every round)\n", "medians over 3 runs:\na 1\nb (medians of every round)\n"},
		{"the last of two", "medians of run A\nx\nmedians of run B\ny\n", "medians of run B\ny\n"},
	} {
		if got := summary(c.out); got != c.want {
			t.Errorf("%s: summary(%q) = %q, want %q", c.name, c.out, got, c.want)
		}
	}
}
