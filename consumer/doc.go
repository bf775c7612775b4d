// Package consumer is runnel's fetch path: it turns partition reads into a
// Kafka Fetch response whose record bytes go from segment files to the
// socket with sendfile(2), never through user space.
//
// A response is encoded as a list of pieces: protocol bytes (framing, topic
// and partition headers) held in one buffer, and file regions (segment.Region)
// spliced in where each partition's records go. Send writes the protocol
// bytes with write(2) and each region with sendfile(2), corking the socket so
// the pieces leave in full packets. Two other paths exist only for
// comparison and are chosen per server: copy (pread into a buffer, then
// write) and mmap (map the segment file, write from the mapping, unmap).
package consumer
