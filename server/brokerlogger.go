package server

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/authz"
)

// BROKER_LOGGER configs (resource type 8, KIP-412): a broker's loggers and
// their levels, as `kafka-configs.sh --entity-type broker-loggers` reads
// and sets them. runnel has one logger, "root", whose level is the
// broker's log level (Config.LogLevel). A change applies at once to this
// broker and, as Kafka's logger changes, is not kept: the log.level broker
// config (dynamic, in the metadata) or the flag applies again at the next
// start or the next change of it. Kafka's levels map to slog's: TRACE and
// DEBUG debug, INFO info, WARN warn, ERROR and FATAL error.

// rootLogger is the name of runnel's one logger.
const rootLogger = "root"

// kafkaLevel names a slog level as Kafka's loggers do.
func kafkaLevel(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "DEBUG"
	case l <= slog.LevelInfo:
		return "INFO"
	case l <= slog.LevelWarn:
		return "WARN"
	}
	return "ERROR"
}

// parseKafkaLevel reads a Kafka logger level.
func parseKafkaLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARN":
		return slog.LevelWarn, nil
	case "ERROR", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: log level %q: want TRACE, DEBUG, INFO, WARN, ERROR or FATAL", kerr.InvalidConfig, s)
}

// loggerTarget checks that a BROKER_LOGGER resource names this broker,
// which alone answers for its loggers.
func (s *Server) loggerTarget(name string) error {
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil || int32(id) != s.cfg.NodeID {
		return fmt.Errorf("%w: broker loggers of %q: this is broker %d; ask that broker", kerr.InvalidRequest, name, s.cfg.NodeID)
	}
	if s.cfg.LogLevel == nil {
		return fmt.Errorf("%w: this broker's log level cannot be changed", kerr.InvalidRequest)
	}
	return nil
}

func (s *Server) describeBrokerLoggers(c *conn, rr kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) {
	if !s.authorize(c, "DescribeConfigs", authz.OpDescribeConfigs, authz.ResourceCluster, clusterResource) {
		sr.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return
	}
	if err := s.loggerTarget(rr.ResourceName); err != nil {
		sr.ErrorCode, sr.ErrorMessage = errorCode(err), errMessage(err)
		return
	}
	if rr.ConfigNames != nil && !containsString(rr.ConfigNames, rootLogger) {
		return
	}
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name, rc.Value = rootLogger, kmsg.StringPtr(kafkaLevel(s.cfg.LogLevel.Level()))
	rc.Source = kmsg.ConfigSourceDynamicBrokerLoggerConfig
	rc.ConfigType = kmsg.ConfigTypeString
	sr.Configs = append(sr.Configs, rc)
}

func containsString(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// alterBrokerLoggers applies SET (a level) and DELETE (back to INFO, the
// default) of the root logger; APPEND and SUBTRACT do not apply to a
// level, and other loggers do not exist.
func (s *Server) alterBrokerLoggers(c *conn, api, name string, ops []configOp, validateOnly bool) error {
	if !s.authorize(c, api, authz.OpAlterConfigs, authz.ResourceCluster, clusterResource) {
		return kerr.ClusterAuthorizationFailed
	}
	if err := s.loggerTarget(name); err != nil {
		return err
	}
	level := s.cfg.LogLevel.Level()
	for _, o := range ops {
		if o.name != rootLogger {
			return fmt.Errorf("%w: logger %q: runnel has one logger, %q", kerr.InvalidConfig, o.name, rootLogger)
		}
		switch {
		case o.op == opDelete:
			level = slog.LevelInfo
		case o.op != opSet:
			return fmt.Errorf("%w: logger levels take SET and DELETE only", kerr.InvalidRequest)
		case o.value == nil:
			return fmt.Errorf("%w: a null level for logger %q", kerr.InvalidConfig, o.name)
		default:
			l, err := parseKafkaLevel(*o.value)
			if err != nil {
				return err
			}
			level = l
		}
	}
	if !validateOnly {
		s.cfg.LogLevel.Set(level)
	}
	return nil
}
