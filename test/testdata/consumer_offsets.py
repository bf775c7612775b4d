"""Reads Kafka's __consumer_offsets topic with kafka-python and decodes its
records with Kafka's key and value schemas, written out here by hand
(struct, big-endian), as an offsets tool that knows nothing of runnel does.

    consumer_offsets.py read BOOTSTRAP   every record of the topic, from its
                                         start to its end offsets now
    consumer_offsets.py decode           the [key_hex, value_hex] pairs of a
                                         JSON list on stdin

Either prints one JSON object on stdout. A record is
{"partition", "offset", "key_len", "value_len", "key": {...},
"value": {...} or null for a tombstone}.
"""

import json
import struct
import sys


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def int16(self):
        return self.take(">h")

    def int32(self):
        return self.take(">i")

    def int64(self):
        return self.take(">q")

    def uvarint(self):
        shift = v = 0
        while True:
            c = self.b[self.i]
            self.i += 1
            v |= (c & 0x7F) << shift
            if c < 0x80:
                return v
            shift += 7

    def string(self):
        """An int16-length-prefixed string."""
        n = self.int16()
        if n < 0:
            return None
        s = self.b[self.i:self.i + n]
        if len(s) != n:
            raise ValueError("string runs past the end")
        self.i += n
        return s.decode("utf-8")

    def compact_string(self):
        """A string of a flexible version: unsigned varint length + 1."""
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.b[self.i:self.i + n]
        self.i += n
        return s.decode("utf-8")

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.i += self.uvarint()


def decode_key(b):
    """OffsetCommitKey (versions 0 and 1) or GroupMetadataKey (2)."""
    r = Reader(b)
    version = r.int16()
    if version in (0, 1):
        return {"version": version, "kind": "offset", "group": r.string(), "topic": r.string(), "partition": r.int32()}
    if version == 2:
        return {"version": version, "kind": "group", "group": r.string()}
    return {"version": version, "kind": "unknown"}


def decode_offset_value(b):
    """OffsetCommitValue, versions 0 to 4."""
    r = Reader(b)
    version = r.int16()
    v = {"version": version, "offset": r.int64(), "leader_epoch": -1, "expire_timestamp": -1}
    if version >= 3:
        v["leader_epoch"] = r.int32()
    v["metadata"] = r.compact_string() if version >= 4 else r.string()
    v["commit_timestamp"] = r.int64()
    if version == 1:
        v["expire_timestamp"] = r.int64()
    if version >= 4:
        r.skip_tags()
    return v


def decode(key, value):
    k = decode_key(key)
    out = {"key_len": len(key), "value_len": -1 if value is None else len(value), "key": k, "value": None}
    if value is not None:
        if k["kind"] == "offset":
            out["value"] = decode_offset_value(value)
        else:
            # Group metadata: only its version is read here.
            out["value"] = {"version": struct.unpack_from(">h", value)[0]}
    return out


def read(bootstrap):
    from kafka import KafkaConsumer, TopicPartition

    topic = "__consumer_offsets"
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=30000)
    parts = c.partitions_for_topic(topic)
    if not parts:
        raise SystemExit("no partitions for " + topic)
    cluster = c._client.cluster
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    end = c.end_offsets(tps)
    records = []
    while any(c.position(tp) < end[tp] for tp in tps):
        for tp, recs in c.poll(timeout_ms=1000).items():
            for m in recs:
                if m.offset >= end[tp]:
                    continue
                d = decode(m.key, m.value)
                d["partition"], d["offset"] = m.partition, m.offset
                records.append(d)
    c.close()
    return {
        "partitions": len(parts),
        "internal": topic in cluster.internal_topics,
        "listed_without_internal": topic in cluster.topics(exclude_internal_topics=True),
        "records": records,
    }


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "read":
        out = read(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "decode":
        pairs = json.load(sys.stdin)
        out = {"records": [decode(bytes.fromhex(k), None if v is None else bytes.fromhex(v)) for k, v in pairs]}
    else:
        raise SystemExit(__doc__)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
