package group

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Config configures a Coordinator. Zero values take the defaults, except
// InitialRebalanceDelay, where zero means none.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// member may ask for (Kafka's group.min/max.session.timeout.ms).
	// Defaults 6 s and 30 min.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay holds the first rebalance of an empty group so
	// that members starting together join one generation
	// (group.initial.rebalance.delay.ms); each new member extends it, up to
	// the rebalance timeout.
	InitialRebalanceDelay time.Duration
	// OffsetsRetention: committed offsets of a group with no members expire
	// this long after the later of their commit and the group becoming
	// empty (offsets.retention.minutes). Default 7 days.
	OffsetsRetention time.Duration
	// RetentionCheckInterval is how often expired offsets are removed.
	// Default 10 minutes.
	RetentionCheckInterval time.Duration
	// MaxOffsetMetadata bounds the metadata string of one committed offset
	// (offset.metadata.max.bytes). Default 4096.
	MaxOffsetMetadata int
	// MaxMemberMetadata bounds one member's protocol metadata, summed over
	// its protocols. Default 1 MiB.
	MaxMemberMetadata int
	// MaxGroupSize bounds the members of one group (group.max.size). Zero:
	// no limit.
	MaxGroupSize int
	// PartitionExists reports whether offsets may be committed for a
	// partition. Nil: every partition exists.
	PartitionExists func(topic string, partition int32) bool
	// Clock: nil means SystemClock.
	Clock Clock
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	if c.OffsetsRetention == 0 {
		c.OffsetsRetention = 7 * 24 * time.Hour
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = 10 * time.Minute
	}
	if c.MaxOffsetMetadata == 0 {
		c.MaxOffsetMetadata = 4096
	}
	if c.MaxMemberMetadata == 0 {
		c.MaxMemberMetadata = 1 << 20
	}
	if c.PartitionExists == nil {
		c.PartitionExists = func(string, int32) bool { return true }
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// State is a group's state, named as Kafka names it.
type State int

// Group states.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

func (s State) String() string { return stateNames[s] }

// ParseState returns the state with Kafka's name, case-insensitively.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if equalFold(n, name) {
			return State(i), true
		}
	}
	return 0, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// Coordinator coordinates every group whose coordinator is this broker.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	store OffsetStore

	mu struct {
		sync.Mutex
		groups         map[string]*group
		closed         bool
		resigned       bool // another broker coordinates the groups now
		retentionTimer Timer
		order          int64 // the place of the last write accepted (txn.go)
		// txnGroups: producer id → the groups that may have offsets
		// pending in its transaction (txn.go).
		txnGroups map[int64]map[string]bool
	}
}

// New returns a coordinator that keeps committed offsets in store, loading
// those already there.
func New(cfg Config, store OffsetStore) (*Coordinator, error) {
	cfg = cfg.withDefaults()
	c := &Coordinator{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, store: store}
	c.mu.groups = map[string]*group{}
	if err := c.loadLocked(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.mu.retentionTimer = c.clock.AfterFunc(cfg.RetentionCheckInterval, c.retentionTick)
	c.mu.Unlock()
	return c, nil
}

// loadLocked replaces the groups with the committed offsets in the store.
func (c *Coordinator) loadLocked() error {
	loaded, err := c.store.Load()
	if err != nil {
		return fmt.Errorf("group: load committed offsets: %w", err)
	}
	c.mu.groups = map[string]*group{}
	c.mu.txnGroups = nil
	now := c.clock.Now()
	for id, offs := range loaded {
		g := c.newGroupLocked(id, now)
		for _, o := range offs {
			g.offsets[TopicPartition{o.Topic, o.Partition}] = o
		}
	}
	c.loadTxnLocked(now)
	c.loadGroupsLocked(now)
	return nil
}

// Resign hands the groups over to another broker: waiting JoinGroup and
// SyncGroup calls are answered with ErrNotCoordinator, every group is
// forgotten, and requests are refused with ErrNotCoordinator (so members
// look for the coordinator again) until Lead.
func (c *Coordinator) Resign() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.mu.resigned {
		return
	}
	c.mu.resigned = true
	c.dropGroupsLocked(ErrNotCoordinator)
	c.mu.groups = map[string]*group{}
	c.log.Info("no longer the group coordinator")
}

// Lead makes this broker the coordinator again: groups are rebuilt from
// the committed offsets in the store (members rejoin).
func (c *Coordinator) Lead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || !c.mu.resigned {
		return nil
	}
	if err := c.loadLocked(); err != nil {
		return err
	}
	c.mu.resigned = false
	c.log.Info("now the group coordinator", "groups", len(c.mu.groups))
	return nil
}

// Coordinating reports whether this broker coordinates the groups now.
func (c *Coordinator) Coordinating() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.mu.closed && !c.mu.resigned
}

// dropGroupsLocked answers every waiting member with err and stops every
// timer.
func (c *Coordinator) dropGroupsLocked(err error) {
	for _, g := range c.mu.groups {
		g.stopTimers()
		for _, m := range g.members {
			m.answerJoin(JoinResult{Err: err})
			m.answerSync(SyncResult{Err: err})
			stop(m.expiry)
		}
		for _, p := range g.pending {
			p.Stop()
		}
	}
}

// Close answers every waiting JoinGroup and SyncGroup with
// ErrCoordinatorNotAvailable (their members will look for the coordinator
// again), stops every timer and refuses further requests.
func (c *Coordinator) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return
	}
	c.mu.closed = true
	c.mu.retentionTimer.Stop()
	c.dropGroupsLocked(ErrCoordinatorNotAvailable)
}

// newGroupLocked creates an empty group and adds it to the map.
func (c *Coordinator) newGroupLocked(id string, now time.Time) *group {
	g := &group{
		id:         id,
		members:    map[string]*member{},
		pending:    map[string]Timer{},
		static:     map[string]string{},
		offsets:    map[TopicPartition]Offset{},
		emptySince: now,
	}
	if c.mu.groups == nil {
		c.mu.groups = map[string]*group{}
	}
	c.mu.groups[id] = g
	return g
}

// newMemberID returns a member id as Kafka forms them: the client id, a
// dash, a random UUID.
func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", clientID, b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func stop(t Timer) {
	if t != nil {
		t.Stop()
	}
}

// sortedGroups returns the groups by id.
func (c *Coordinator) sortedGroupsLocked() []*group {
	out := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
