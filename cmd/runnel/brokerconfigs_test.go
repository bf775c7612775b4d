package main

import (
	"testing"

	"github.com/runnel-io/runnel/internal/brokerconfig"
)

// TestBrokerConfigFlagsExist: every broker config's flag is a setting of
// runnel serve.
func TestBrokerConfigFlagsExist(t *testing.T) {
	flags := map[string]bool{}
	for _, s := range serveSettings {
		flags[s.name] = true
	}
	for _, d := range brokerconfig.Defs {
		if d.Flag != "" && !flags[d.Flag] {
			t.Errorf("broker config %s names flag --%s, which runnel serve does not have", d.Name, d.Flag)
		}
	}
}
