package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runnel-io/runnel/broker"
)

// serve runs a broker until SIGTERM or SIGINT (SIGHUP reloads the TLS
// certificate files): the flags, environment and
// config file become a broker.Config, and package broker does the rest.
func serve(args []string, stderr io.Writer) error {
	v, err := parseSettings(args, serveSettings, stderr)
	if err != nil {
		return err
	}
	o, err := v.options(serveSettings)
	if err != nil {
		return err
	}
	logger, level, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		return err
	}
	o.broker.Logger, o.broker.LogLevel = logger, level

	// Signals are taken from the start: a SIGTERM while the broker starts
	// (recovering its logs, waiting for a quorum to register) stops it
	// cleanly once started, and a second one, or --shutdown-timeout
	// without the start finishing, ends the process at once.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	started, earlyDone := make(chan struct{}), make(chan struct{})
	early := make(chan os.Signal, 1)
	go func() {
		defer close(earlyDone)
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					continue // the certificates are read as the broker starts
				}
				logger.Info("shutting down once started", "signal", sig.String())
				early <- sig
				deadline := time.After(o.broker.ShutdownTimeout)
				for {
					select {
					case <-started:
						return
					case sig := <-sigs:
						if sig == syscall.SIGHUP {
							continue
						}
						logger.Error("stopping at once: a second signal during start-up", "signal", sig.String())
						os.Exit(1)
					case <-deadline:
						logger.Error("stopping at once: start-up did not finish within the shutdown timeout", "shutdown_timeout", o.broker.ShutdownTimeout)
						os.Exit(1)
					}
				}
			case <-started:
				return
			}
		}
	}()
	b, err := broker.New(o.broker)
	close(started)
	<-earlyDone // a signal it took is in early now
	if err != nil {
		return err
	}
	defer b.Close()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	select {
	case <-early:
		stop() // Run shuts down at once, cleanly
	default:
	}
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					// Reloads the TLS files; a failure is logged by the
					// store and the certificate in use stays.
					b.ReloadCertificates()
					continue
				}
				logger.Info("shutting down", "signal", sig.String())
				stop()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return b.Run(ctx)
}

// newLogger returns the broker's logger and its level, which the dynamic
// broker config log.level changes while the broker runs.
func newLogger(level, format string, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	lv := new(slog.LevelVar)
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), lv, nil
	}
	return nil, nil, errors.New("--log-format: want text or json")
}
