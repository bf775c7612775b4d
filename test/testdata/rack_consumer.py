"""Consumes partitions of a topic with librdkafka (confluent-kafka for
Python) as a consumer in a rack (client.rack), from the start of each until
it holds at least the given count of records of every one.

    rack_consumer.py BOOTSTRAP TOPIC RACK COUNT PARTITION...

Prints one JSON object on stdout: {"records": [[partition, offset, value],
...]} in the order consumed.
"""

import json
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition


def main():
    bootstrap, topic, rack, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    partitions = [int(p) for p in sys.argv[5:]]
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "rack-" + rack,
        "client.rack": rack,
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 200,
    })
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    got = {p: 0 for p in partitions}
    try:
        while min(got.values()) < count:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append([m.partition(), m.offset(), m.value().decode()])
            got[m.partition()] += 1
    finally:
        c.close()
    json.dump({"records": out}, sys.stdout)


if __name__ == "__main__":
    main()
