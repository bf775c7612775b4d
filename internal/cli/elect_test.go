package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestElectionsTable(t *testing.T) {
	results := kadm.ElectLeadersResults{
		"orders": {
			1: {Topic: "orders", Partition: 1, Err: kerr.PreferredLeaderNotAvailable, ErrMessage: "preferred replica 2 is fenced"},
			0: {Topic: "orders", Partition: 0},
		},
		"audit": {0: {Topic: "audit", Partition: 0, Err: kerr.ElectionNotNeeded}},
	}
	leaders := map[string]map[int32]int32{"orders": {0: 1, 1: 3}, "audit": {0: 2}}
	var b bytes.Buffer
	if err := printElections(&b, electionRows(results, leaders)); err != nil {
		t.Fatal(err)
	}
	want := `TOPIC   PARTITION  LEADER  RESULT
audit   0          2       ` + kerr.ElectionNotNeeded.Error() + `
orders  0          1       elected
orders  1          3       PREFERRED_LEADER_NOT_AVAILABLE: preferred replica 2 is fenced
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestLogDirsTable(t *testing.T) {
	dirs := kadm.DescribedAllLogDirs{
		2: {"/data/2/topics": {Broker: 2, Dir: "/data/2/topics", TotalBytes: 1000, UsableBytes: 400, Topics: kadm.DescribedLogDirTopics{
			"orders": {1: {Broker: 2, Dir: "/data/2/topics", Topic: "orders", Partition: 1, Size: 70, OffsetLag: 3}}}}},
		1: {"/data/1/topics": {Broker: 1, Dir: "/data/1/topics", TotalBytes: -1, UsableBytes: -1, Topics: kadm.DescribedLogDirTopics{
			"orders": {
				1: {Broker: 1, Topic: "orders", Partition: 1, Size: 80},
				0: {Broker: 1, Topic: "orders", Partition: 0, Size: 20},
			}}}},
	}
	var b bytes.Buffer
	if err := printLogDirs(&b, dirs.Sorted()); err != nil {
		t.Fatal(err)
	}
	want := `BROKER  DIR             TOTAL-BYTES  USABLE-BYTES  SIZE  ERROR
1       /data/1/topics  -            -             100   -
2       /data/2/topics  1000         400           70    -

BROKER  TOPIC   PARTITION  SIZE  OFFSET-LAG
1       orders  0          20    0
1       orders  1          80    0
2       orders  1          70    3
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestElectLeadersFlags: flags refused before any broker is asked.
func TestElectLeadersFlags(t *testing.T) {
	err := Cluster([]string{"elect-leaders", "--partition", "2"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--partition needs --topic") {
		t.Fatalf("--partition alone: %v", err)
	}
	var out bytes.Buffer
	Cluster(nil, io.Discard, &out)
	for _, cmd := range []string{"elect-leaders", "log-dirs"} {
		if !strings.Contains(out.String(), "\n  "+cmd+" ") {
			t.Fatalf("usage does not list %s:\n%s", cmd, out.String())
		}
	}
}
