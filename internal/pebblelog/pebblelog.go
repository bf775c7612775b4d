// Package pebblelog sends Pebble's log messages to slog.
package pebblelog

import (
	"fmt"
	"log/slog"
)

// Logger sends Pebble's messages to slog at debug level; Fatalf is logged
// at error level and turned into a panic, as Pebble expects it not to
// return. Component names the database in every line.
type Logger struct {
	L         *slog.Logger
	Component string
}

// Infof logs at debug level.
func (p Logger) Infof(format string, args ...interface{}) {
	p.L.Debug(fmt.Sprintf(format, args...), "component", p.Component)
}

// Errorf logs at error level.
func (p Logger) Errorf(format string, args ...interface{}) {
	p.L.Error(fmt.Sprintf(format, args...), "component", p.Component)
}

// Fatalf logs at error level and panics.
func (p Logger) Fatalf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	p.L.Error(msg, "component", p.Component)
	panic(p.Component + ": pebble fatal error: " + msg)
}
