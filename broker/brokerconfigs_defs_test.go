package broker

import (
	"testing"

	"github.com/runnel-io/runnel/internal/brokerconfig"
)

// TestBrokerConfigsHaveStaticValues: every broker config that is a flag
// has its value in staticSettings, and every entry there is a broker
// config of that kind.
func TestBrokerConfigsHaveStaticValues(t *testing.T) {
	for _, d := range brokerconfig.Defs {
		if _, ok := staticSettings[d.Name]; (d.Flag != "") != ok {
			t.Errorf("%s (flag %q): static value known %v", d.Name, d.Flag, ok)
		}
	}
	for name := range staticSettings {
		if d, ok := brokerconfig.Lookup(name); !ok || d.Flag == "" {
			t.Errorf("staticSettings has %s, not a broker config with a flag", name)
		}
	}
}
