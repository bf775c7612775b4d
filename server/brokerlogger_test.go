package server

import (
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBrokerLoggers: the root logger of BROKER_LOGGER configs reads and
// sets the broker's log level, on the broker named only, with Kafka's
// level names and errors.
func TestBrokerLoggers(t *testing.T) {
	level := new(slog.LevelVar)
	ts := newTestServer(t, Config{NodeID: 1, LogLevel: level})
	loggerRes := kmsg.ConfigResourceTypeBrokerLogger
	root := func() string {
		t.Helper()
		got := configsByName(ts.describeConfigs(t, loggerRes, "1"))
		c, ok := got["root"]
		if !ok || len(got) != 1 || c.Value == nil {
			t.Fatalf("broker loggers: %v", got)
		}
		return *c.Value
	}
	if got := root(); got != "INFO" {
		t.Fatalf("root logger %s, want INFO", got)
	}
	alter := func(name string, op int8, value *string, validate bool) int16 {
		t.Helper()
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.ValidateOnly = validate
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = loggerRes, name
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Op, rc.Value = "root", kmsg.IncrementalAlterConfigOp(op), value
		rr.Configs = append(rr.Configs, rc)
		req.Resources = append(req.Resources, rr)
		return ts.call(t, req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode
	}
	v := kmsg.StringPtr
	if code := alter("1", opSet, v("TRACE"), true); code != 0 || level.Level() != slog.LevelInfo {
		t.Fatalf("validate only: code %d, level %v", code, level.Level())
	}
	if code := alter("1", opSet, v("TRACE"), false); code != 0 || level.Level() != slog.LevelDebug || root() != "DEBUG" {
		t.Fatalf("set TRACE: code %d, level %v", code, level.Level())
	}
	if code := alter("1", opSet, v("error"), false); code != 0 || level.Level() != slog.LevelError {
		t.Fatalf("set error: code %d, level %v", code, level.Level())
	}
	if code := alter("1", opDelete, nil, false); code != 0 || level.Level() != slog.LevelInfo {
		t.Fatalf("delete: code %d, level %v", code, level.Level())
	}
	for _, c := range []struct {
		what  string
		name  string
		op    int8
		value *string
		want  error
	}{
		{"bad level", "1", opSet, v("LOUD"), kerr.InvalidConfig},
		{"null level", "1", opSet, nil, kerr.InvalidConfig},
		{"append", "1", 2, v("DEBUG"), kerr.InvalidRequest},
		{"another broker", "2", opSet, v("DEBUG"), kerr.InvalidRequest},
		{"not a broker id", "x", opSet, v("DEBUG"), kerr.InvalidRequest},
	} {
		if code := alter(c.name, c.op, c.value, false); code != c.want.(*kerr.Error).Code {
			t.Errorf("%s: code %d, want %v", c.what, code, c.want)
		}
	}
	if level.Level() != slog.LevelInfo {
		t.Fatalf("a refused change moved the level to %v", level.Level())
	}
	// Only the root logger exists, and legacy AlterConfigs does not
	// change loggers (Kafka's rule).
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = loggerRes, "1"
	rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	rc.Name, rc.Value = "kafka.server.ReplicaManager", v("DEBUG")
	rr.Configs = append(rr.Configs, rc)
	req.Resources = append(req.Resources, rr)
	if code := ts.call(t, req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode; code != kerr.InvalidConfig.Code {
		t.Errorf("unknown logger: code %d", code)
	}
	legacy := kmsg.NewPtrAlterConfigsRequest()
	lr := kmsg.NewAlterConfigsRequestResource()
	lr.ResourceType, lr.ResourceName = loggerRes, "1"
	lc := kmsg.NewAlterConfigsRequestResourceConfig()
	lc.Name, lc.Value = "root", v("DEBUG")
	lr.Configs = append(lr.Configs, lc)
	legacy.Resources = append(legacy.Resources, lr)
	if code := ts.call(t, legacy).(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode; code != kerr.InvalidRequest.Code {
		t.Errorf("legacy AlterConfigs of a logger: code %d", code)
	}
	// Another broker's loggers are not described here.
	if got := ts.describeConfigs(t, loggerRes, "2"); got.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("describe broker 2's loggers on broker 1: code %d", got.ErrorCode)
	}
}
