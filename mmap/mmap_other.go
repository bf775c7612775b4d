//go:build !linux

package mmap

// runnel needs Linux: shared file mappings with fallocate-backed growth and
// sendfile(2). This line stops the build on other systems with that message.
var _ int = "runnel/mmap: only linux is supported (mmap, fallocate and sendfile are required)"
