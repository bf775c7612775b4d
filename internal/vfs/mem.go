package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/mmap"
)

// Op is a kind of file operation, for counting and injecting errors.
type Op int

// The operations of MemFS.
const (
	OpCreate   Op = iota // Create, CreateTemp
	OpWrite              // Write, WriteAt
	OpSync               // File.Sync, File.Datasync
	OpMsync              // Mapping.Sync
	OpSyncDir            // FS.SyncDir
	OpTruncate           // File.Truncate
	OpAllocate           // File.Allocate
	OpZero               // File.ZeroFrom
	OpRename             // FS.Rename
	OpRemove             // FS.Remove, FS.RemoveAll
	OpMkdir              // FS.Mkdir
	OpMap                // File.Map
	OpSyncFS             // Volume.Sync
	numOps
)

var opNames = [numOps]string{"create", "write", "sync", "msync", "syncdir", "truncate", "allocate", "zero", "rename", "remove", "mkdir", "map", "syncfs"}

func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return "op" + strconv.Itoa(int(o))
}

func (o Op) isSync() bool {
	return o == OpSync || o == OpMsync || o == OpSyncDir || o == OpSyncFS
}

// Errors of MemFS.
var (
	// ErrDown: the twin's machine is down (Freeze, FreezeAtSync): every
	// change and sync fails until Crash or Restart.
	ErrDown = errors.New("vfs: memfs: the machine is down")
	// ErrStale: a file or mapping opened before the last Crash or Restart
	// was used; it belongs to a process that no longer exists.
	ErrStale = errors.New("vfs: memfs: file of an earlier boot")
)

// Fault decides whether an operation fails: a non-nil error fails it.
// It is called with the file system's lock held and must not call back
// into it.
type Fault func(op Op, path string) error

// MemFS is an in-memory FS that remembers what was last made durable, for
// crash tests. Each file has volatile contents (what reads see, the page
// cache) and durable contents (what the last Datasync, Sync or covering
// msync copied); each directory has volatile and durable entries (what the
// last SyncDir copied). Crash throws the volatile state away as a power
// failure would; Restart keeps it, as killing the process does.
//
// Mappings are real anonymous memory holding the file's volatile bytes, so
// stores through them are seen by reads at once and reach the durable
// contents only at the next sync, as with a shared file mapping. A mapped
// file may not grow past the length of its mapping (segment files never
// do). The zero MemFS is not usable: call NewMemFS.
type MemFS struct {
	mu       sync.Mutex
	root     *memNode
	boot     int // incremented by Crash and Restart
	syncs    int
	freezeAt int
	down     bool
	counts   [numOps]int
	fault    Fault
	open     int
	maps     int
	temp     int
}

type memNode struct {
	dir  bool
	mode os.FileMode
	// directory
	children, durableChildren map[string]*memNode
	// file
	data    []byte // volatile contents
	region  *region
	durable []byte
	failed  error // sticky sync failure
}

// region is anonymous memory holding a mapped file's volatile bytes.
type region struct {
	b    []byte
	refs int
}

// NewMemFS returns an empty MemFS with a durable root directory.
func NewMemFS() *MemFS {
	return &MemFS{root: &memNode{dir: true, mode: fs.ModeDir | 0o755,
		children: map[string]*memNode{}, durableChildren: map[string]*memNode{}}}
}

// Inject installs f to decide, for every later operation, whether it
// fails (nil removes it). An injected failure of a sync is sticky for its
// file, as a real one is.
func (m *MemFS) Inject(f Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// FailNth makes the nth operation of kind op from now on (1: the next one)
// fail with err, once; a path filter, when not empty, limits the count to
// paths containing it.
func (m *MemFS) FailNth(op Op, n int, filter string, err error) {
	seen := 0
	m.Inject(func(o Op, path string) error {
		if o != op || !strings.Contains(path, filter) {
			return nil
		}
		seen++
		if seen == n {
			return err
		}
		return nil
	})
}

// FreezeAtSync takes the machine down at the nth sync from now on (1: the
// next one), before that sync does anything: what it would have made
// durable is not. Every later change and sync fails with ErrDown.
func (m *MemFS) FreezeAtSync(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.freezeAt = m.syncs + n
}

// Freeze takes the machine down now.
func (m *MemFS) Freeze() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = true
}

// Down reports whether the machine is down.
func (m *MemFS) Down() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down
}

// Syncs returns how many syncs (file, mapping and directory) were asked
// for so far, failed ones included.
func (m *MemFS) Syncs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncs
}

// Count returns how many operations of kind op were asked for so far.
func (m *MemFS) Count(op Op) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[op]
}

// OpenFiles returns how many files are open (not closed), of every boot.
func (m *MemFS) OpenFiles() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open
}

// Mappings returns how many mappings exist (not unmapped), of every boot.
func (m *MemFS) Mappings() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maps
}

// Crash is a power failure and reboot: every directory gets back its
// durable entries and every file its durable contents; files reachable
// only through entries that were never synced are gone. Files and
// mappings opened before become stale. The machine is up again, with no
// fault installed and no freeze pending.
func (m *MemFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashLocked()
}

func (m *MemFS) crashLocked() {
	seen := map[*memNode]bool{}
	var revert func(d *memNode)
	revert = func(d *memNode) {
		if seen[d] {
			return
		}
		seen[d] = true
		d.failed = nil
		d.children = maps.Clone(d.durableChildren)
		for _, c := range d.children {
			if c.dir {
				revert(c)
				continue
			}
			if !seen[c] {
				seen[c] = true
				c.detach()
				c.data = slices.Clone(c.durable)
				c.failed = nil
			}
		}
	}
	revert(m.root)
	m.reboot()
}

// tornPage is the unit in which CrashTorn lets unsynced bytes survive.
const tornPage = 4096

// CrashTorn is Crash with part of what was not synced having reached the
// disk before the power went, as write-back does in no particular order:
// rng decides, for every file, whether its unsynced size survives and
// which of its unsynced pages (4 KiB) do, and for every directory whether
// its unsynced entries do. What was synced survives whatever rng says.
func (m *MemFS) CrashTorn(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[*memNode]bool{}
	var walk func(d *memNode)
	walk = func(d *memNode) {
		if seen[d] {
			return
		}
		seen[d] = true
		if rng.IntN(2) == 0 {
			d.durableChildren = maps.Clone(d.children)
		}
		for _, c := range d.durableChildren {
			if c.dir {
				walk(c)
			} else if !seen[c] {
				seen[c] = true
				c.tear(rng)
			}
		}
	}
	walk(m.root)
	m.crashLocked()
}

// tear makes the durable contents what a crash in the middle of write-back
// leaves: the synced bytes, and a random part of the unsynced ones.
func (n *memNode) tear(rng *rand.Rand) {
	size := len(n.durable)
	if len(n.data) != size && rng.IntN(2) == 0 {
		size = len(n.data)
	}
	out := make([]byte, size)
	copy(out, n.durable)
	for off := 0; off < size; off += tornPage {
		end := min(off+tornPage, size)
		var vol []byte
		if off < len(n.data) {
			vol = n.data[off:min(end, len(n.data))]
		}
		if off < len(n.durable) && bytes.Equal(vol, n.durable[off:min(end, len(n.durable))]) {
			continue // nothing unsynced here
		}
		if rng.IntN(2) == 0 {
			clear(out[off:end])
			copy(out[off:end], vol)
		}
	}
	n.durable = out
}

// Restart is the process being killed and started again on a machine that
// stays up: everything volatile is kept (the page cache survives), files
// and mappings opened before become stale, and sticky sync failures are
// forgotten with the process that saw them.
func (m *MemFS) Restart() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var walk func(d *memNode)
	walk = func(d *memNode) {
		d.failed = nil
		for _, c := range d.children {
			if c.dir {
				walk(c)
			} else {
				c.detach()
				c.failed = nil
			}
		}
	}
	walk(m.root)
	m.reboot()
}

func (m *MemFS) reboot() {
	m.boot++
	m.down, m.freezeAt, m.fault = false, 0, nil
}

// detach moves a file's bytes out of its mapping's memory, which stale
// mappings may still hold.
func (n *memNode) detach() {
	if n.region != nil {
		n.data = slices.Clone(n.data)
		n.region = nil
	}
}

// check is called with m.mu held before every operation of kind op.
func (m *MemFS) check(op Op, path string, n *memNode) error {
	if m.down {
		return &os.PathError{Op: op.String(), Path: path, Err: ErrDown}
	}
	m.counts[op]++
	if op.isSync() {
		m.syncs++
		if m.syncs == m.freezeAt {
			m.down = true
			return &os.PathError{Op: op.String(), Path: path, Err: ErrDown}
		}
		if n != nil && n.failed != nil {
			return fmt.Errorf("%w: %s: an earlier sync failed, its data may be lost: %w", ErrSyncFailed, path, n.failed)
		}
	}
	if m.fault != nil {
		if err := m.fault(op, path); err != nil {
			if op.isSync() {
				err = fmt.Errorf("%w: %s %s: %w", ErrSyncFailed, op, path, err)
				if n != nil {
					n.failed = err
				}
				return err
			}
			return &os.PathError{Op: op.String(), Path: path, Err: err}
		}
	}
	return nil
}

func split(name string) []string {
	name = filepath.Clean("/" + name)
	if name == "/" {
		return nil
	}
	return strings.Split(name[1:], "/")
}

// lookup finds name's parent directory and the node itself (nil when
// missing). A missing parent is an error.
func (m *MemFS) lookup(op, name string) (parent *memNode, base string, n *memNode, err error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", m.root, nil
	}
	d := m.root
	for _, p := range parts[:len(parts)-1] {
		c := d.children[p]
		if c == nil {
			return nil, "", nil, &os.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if !c.dir {
			return nil, "", nil, &os.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		d = c
	}
	base = parts[len(parts)-1]
	return d, base, d.children[base], nil
}

func (m *MemFS) Create(name string, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.createLocked(name, perm)
}

func (m *MemFS) createLocked(name string, perm os.FileMode) (File, error) {
	d, base, n, err := m.lookup("create", name)
	if err != nil {
		return nil, err
	}
	if err := m.check(OpCreate, name, nil); err != nil {
		return nil, err
	}
	if n != nil || d == nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	}
	n = &memNode{mode: perm}
	d.children[base] = n
	return m.handleLocked(name, n), nil
}

func (m *MemFS) CreateTemp(dir, pattern string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix, suffix, _ := strings.Cut(pattern, "*")
	for {
		m.temp++
		name := filepath.Join(dir, prefix+strconv.Itoa(m.temp)+suffix)
		if _, _, n, err := m.lookup("createtemp", name); err != nil {
			return nil, err
		} else if n == nil {
			return m.createLocked(name, 0o600)
		}
	}
}

func (m *MemFS) handleLocked(name string, n *memNode) *memFile {
	m.open++
	return &memFile{fs: m, n: n, name: name, boot: m.boot}
}

func (m *MemFS) Open(name string) (File, error) { return m.open1("open", name) }

func (m *MemFS) OpenReadWrite(name string) (File, error) { return m.open1("open", name) }

func (m *MemFS) open1(op, name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.lookup(op, name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &os.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	if n.dir {
		return nil, &os.PathError{Op: op, Path: name, Err: syscall.EISDIR}
	}
	return m.handleLocked(name, n), nil
}

func (m *MemFS) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, n, err := m.lookup("rename", oldpath)
	if err != nil {
		return err
	}
	nd, nb, target, err := m.lookup("rename", newpath)
	if err != nil {
		return err
	}
	if err := m.check(OpRename, oldpath, nil); err != nil {
		return err
	}
	switch {
	case n == nil || od == nil:
		return &os.PathError{Op: "rename", Path: oldpath, Err: fs.ErrNotExist}
	case nd == nil || (target != nil && target.dir):
		return &os.PathError{Op: "rename", Path: newpath, Err: fs.ErrExist}
	}
	delete(od.children, ob)
	nd.children[nb] = n
	return nil
}

func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, n, err := m.lookup("remove", name)
	if err != nil {
		return err
	}
	if err := m.check(OpRemove, name, nil); err != nil {
		return err
	}
	switch {
	case n == nil:
		return &os.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	case d == nil:
		return &os.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	case n.dir && len(n.children) > 0:
		return &os.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(d.children, base)
	return nil
}

func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, n, err := m.lookup("removeall", name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.check(OpRemove, name, nil); err != nil {
		return err
	}
	if n == nil {
		return nil
	}
	if d == nil {
		return &os.PathError{Op: "removeall", Path: name, Err: syscall.EBUSY}
	}
	delete(d.children, base)
	return nil
}

func (m *MemFS) Mkdir(name string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, n, err := m.lookup("mkdir", name)
	if err != nil {
		return err
	}
	if err := m.check(OpMkdir, name, nil); err != nil {
		return err
	}
	if n != nil || d == nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	d.children[base] = &memNode{dir: true, mode: fs.ModeDir | perm.Perm(),
		children: map[string]*memNode{}, durableChildren: map[string]*memNode{}}
	return nil
}

func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, base, n, err := m.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return n.info(base), nil
}

func (m *MemFS) ReadDir(name string) ([]os.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &os.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	if !n.dir {
		return nil, &os.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	names := slices.Sorted(maps.Keys(n.children))
	out := make([]os.DirEntry, len(names))
	for i, c := range names {
		out[i] = n.children[c].info(c)
	}
	return out, nil
}

func (m *MemFS) SyncDir(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.lookup("syncdir", name)
	if err != nil {
		return err
	}
	if n == nil || !n.dir {
		return &os.PathError{Op: "syncdir", Path: name, Err: fs.ErrNotExist}
	}
	if err := m.check(OpSyncDir, name, n); err != nil {
		return err
	}
	n.durableChildren = maps.Clone(n.children)
	return nil
}

func (m *MemFS) OpenVolume(dir string) (Volume, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.lookup("open volume", dir)
	if err != nil {
		return nil, err
	}
	if n == nil || !n.dir {
		return nil, &os.PathError{Op: "open volume", Path: dir, Err: fs.ErrNotExist}
	}
	return &memVolume{fs: m, dir: dir, boot: m.boot}, nil
}

// memVolume is the whole MemFS, opened through dir.
type memVolume struct {
	fs     *MemFS
	dir    string
	boot   int
	closed bool
}

// Sync makes every directory's entries and every file's contents durable,
// as syncfs does. A file whose earlier sync failed keeps its durable
// contents and makes Sync fail (with ErrSyncFailed, not sticky), so that
// callers sync their files one by one and learn which.
func (v *memVolume) Sync() error {
	m := v.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case v.closed:
		return &os.PathError{Op: "syncfs", Path: v.dir, Err: os.ErrClosed}
	case v.boot != m.boot:
		return &os.PathError{Op: "syncfs", Path: v.dir, Err: ErrStale}
	}
	if err := m.check(OpSyncFS, v.dir, nil); err != nil {
		return err
	}
	var failed error
	seen := map[*memNode]bool{}
	var walk func(d *memNode)
	walk = func(d *memNode) {
		if seen[d] {
			return
		}
		seen[d] = true
		d.durableChildren = maps.Clone(d.children)
		for _, c := range d.children {
			switch {
			case c.dir:
				walk(c)
			case seen[c]:
			case c.failed != nil:
				seen[c] = true
				if failed == nil {
					failed = fmt.Errorf("%w: syncfs %s: a file's earlier sync failed: %w", ErrSyncFailed, v.dir, c.failed)
				}
			default:
				seen[c] = true
				c.durable = append(c.durable[:0], c.data...)
			}
		}
	}
	walk(m.root)
	return failed
}

func (v *memVolume) Close() error {
	v.fs.mu.Lock()
	defer v.fs.mu.Unlock()
	v.closed = true
	return nil
}

func (m *MemFS) SyncFailed(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.lookup("syncfailed", name)
	if err != nil || n == nil || n.failed == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: an earlier sync failed, its data may be lost: %w", ErrSyncFailed, name, n.failed)
}

// memInfo is both the FileInfo and the DirEntry of a node.
type memInfo struct {
	name string
	size int64
	mode os.FileMode
}

func (n *memNode) info(name string) memInfo {
	return memInfo{name: name, size: int64(len(n.data)), mode: n.mode}
}

func (i memInfo) Name() string               { return i.name }
func (i memInfo) Size() int64                { return i.size }
func (i memInfo) Mode() os.FileMode          { return i.mode }
func (i memInfo) ModTime() time.Time         { return time.Time{} }
func (i memInfo) IsDir() bool                { return i.mode.IsDir() }
func (i memInfo) Sys() any                   { return nil }
func (i memInfo) Type() os.FileMode          { return i.mode.Type() }
func (i memInfo) Info() (os.FileInfo, error) { return i, nil }

// memFile is an open file of a MemFS.
type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	boot   int
	pos    int64
	closed bool
}

// live is called with the lock held before every use of the file.
func (f *memFile) live(op string) error {
	switch {
	case f.closed:
		return &os.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	case f.boot != f.fs.boot:
		return &os.PathError{Op: op, Path: f.name, Err: ErrStale}
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.n.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.writeAtLocked(b, off)
}

func (f *memFile) writeAtLocked(b []byte, off int64) (int, error) {
	if err := f.live("write"); err != nil {
		return 0, err
	}
	if err := f.fs.check(OpWrite, f.name, f.n); err != nil {
		return 0, err
	}
	if end := off + int64(len(b)); end > int64(len(f.n.data)) {
		if err := f.n.resize(end); err != nil {
			return 0, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
	}
	return copy(f.n.data[off:], b), nil
}

func (f *memFile) Write(b []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	n, err := f.writeAtLocked(b, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Datasync() error { return f.sync() }

func (f *memFile) Sync() error { return f.sync() }

func (f *memFile) sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("sync"); err != nil {
		return err
	}
	if err := f.fs.check(OpSync, f.name, f.n); err != nil {
		return err
	}
	f.n.durable = append(f.n.durable[:0], f.n.data...)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("truncate"); err != nil {
		return err
	}
	if err := f.fs.check(OpTruncate, f.name, f.n); err != nil {
		return err
	}
	if err := f.n.resize(size); err != nil {
		return &os.PathError{Op: "truncate", Path: f.name, Err: err}
	}
	return nil
}

func (f *memFile) Chmod(mode os.FileMode) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("chmod"); err != nil {
		return err
	}
	f.n.mode = mode
	return nil
}

func (f *memFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("allocate"); err != nil {
		return err
	}
	if err := f.fs.check(OpAllocate, f.name, f.n); err != nil {
		return err
	}
	if size <= int64(len(f.n.data)) {
		return nil
	}
	if err := f.n.resize(size); err != nil {
		return &os.PathError{Op: "allocate", Path: f.name, Err: err}
	}
	return nil
}

func (f *memFile) ZeroFrom(off int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("zero"); err != nil {
		return err
	}
	if err := f.fs.check(OpZero, f.name, f.n); err != nil {
		return err
	}
	if off < int64(len(f.n.data)) {
		clear(f.n.data[off:])
	}
	return nil
}

func (f *memFile) Map(length int, mode mmap.Mode) (Mapping, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.live("map"); err != nil {
		return nil, err
	}
	if err := f.fs.check(OpMap, f.name, f.n); err != nil {
		return nil, err
	}
	if length <= 0 {
		return nil, fmt.Errorf("vfs: memfs: map %s: length %d: %w", f.name, length, mmap.ErrRange)
	}
	n := f.n
	if n.region == nil || len(n.region.b) < length {
		if n.region != nil && n.region.refs > 0 {
			return nil, fmt.Errorf("vfs: memfs: map %s: %d bytes, already mapped over %d", f.name, length, len(n.region.b))
		}
		b, err := unix.Mmap(-1, 0, max(length, len(n.data)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return nil, fmt.Errorf("vfs: memfs: map %s: %w", f.name, err)
		}
		copy(b, n.data)
		n.data = b[:len(n.data)]
		n.region = &region{b: b}
	}
	n.region.refs++
	f.fs.maps++
	return &memMapping{fs: f.fs, n: n, r: n.region, b: n.region.b[:length], name: f.name, boot: f.fs.boot}, nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	f.closed = true
	f.fs.open--
	return nil
}

// resize changes a file's volatile size; new bytes are zeros.
func (n *memNode) resize(size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	if size <= int64(len(n.data)) {
		clear(n.data[size:])
		n.data = n.data[:size]
		return nil
	}
	if n.region != nil {
		if size > int64(cap(n.data)) {
			return fmt.Errorf("vfs: memfs: a mapped file may not grow past its mapping (%d bytes)", cap(n.data))
		}
		n.data = n.data[:size] // zeros: shrinking clears
		return nil
	}
	n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	return nil
}

// memMapping is a mapping of a MemFS file.
type memMapping struct {
	fs   *MemFS
	n    *memNode
	r    *region
	b    []byte
	name string
	boot int
	done bool
}

func (mm *memMapping) Bytes() []byte { return mm.b }

func (mm *memMapping) Sync(off, n int) error {
	mm.fs.mu.Lock()
	defer mm.fs.mu.Unlock()
	if err := mm.checkLocked("msync", off, n); err != nil {
		return err
	}
	node := mm.n
	if err := mm.fs.check(OpMsync, mm.name, node); err != nil {
		return err
	}
	end := min(off+n, len(node.data))
	if off >= end {
		return nil
	}
	if len(node.durable) < end {
		node.durable = append(node.durable, make([]byte, end-len(node.durable))...)
	}
	copy(node.durable[off:end], node.data[off:end])
	return nil
}

// checkLocked says why [off, off+n) of the mapping cannot be used by op:
// unmapped, from before a crash, or outside the mapping. Called with
// fs.mu held.
func (mm *memMapping) checkLocked(op string, off, n int) error {
	switch {
	case mm.done:
		return mmap.ErrClosed
	case mm.boot != mm.fs.boot:
		return &os.PathError{Op: op, Path: mm.name, Err: ErrStale}
	case off < 0 || n < 0 || n > len(mm.b)-off:
		return mmap.ErrRange
	}
	return nil
}

// Release keeps every byte where it is: a MemFS mapping has no page
// tables. It checks the range as the real one does.
func (mm *memMapping) Release(off, n int) error {
	mm.fs.mu.Lock()
	defer mm.fs.mu.Unlock()
	return mm.checkLocked("madvise", off, n)
}

func (mm *memMapping) Unmap() error {
	mm.fs.mu.Lock()
	defer mm.fs.mu.Unlock()
	if mm.done {
		return nil
	}
	mm.done = true
	mm.fs.maps--
	r := mm.r
	r.refs--
	if r.refs > 0 {
		return nil
	}
	if mm.n.region == r {
		mm.n.detach()
	}
	mm.b = nil
	return unix.Munmap(r.b)
}
