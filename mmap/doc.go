// Package mmap is the one place in runnel that maps files into memory.
//
// A segment file is written through a shared, writable mapping: appended bytes
// land in the page cache once, and the kernel writes them back. This package
// owns the system calls behind that (mmap, msync, madvise, munmap, fallocate)
// and the rules that keep a mapping safe to touch.
//
// # Basics
//
// Map maps the first n bytes of an open file. The mapping may be larger than
// the file: that is how an active segment is mapped, once, over its maximum
// size, while the file itself is grown in chunks with Grow ahead of the
// writer. Bytes of the mapping that lie past the end of the file must never
// be read or written.
//
// Grow reserves disk blocks (fallocate) before the size changes, so a full
// disk shows up as an error from Grow (ENOSPC wrapped as ErrNoSpace) and not
// as SIGBUS on a later store into the mapping.
//
// # Caveats
//
//   - A byte slice returned by Mapping.Bytes is valid only until Unmap.
//     Touching it afterwards faults the process. Owners must make sure no
//     reader still uses a mapping before they unmap it (segment/ does this
//     with a lock per segment).
//   - Touching a mapped page past the end of the file raises SIGBUS. Keep
//     every access below the size Grow last established.
//   - Stores into a shared mapping are visible to read(2) and sendfile(2) at
//     once, but are durable only after Sync (or an fdatasync of the file).
//   - Only Linux is supported: the package fails to build elsewhere with a
//     message that says so.
package mmap
