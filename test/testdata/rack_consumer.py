"""Consumes a topic with librdkafka (confluent-kafka for Python) as a
consumer in a rack (client.rack), from the start of every partition until
it holds at least the given count of records.

    rack_consumer.py BOOTSTRAP TOPIC RACK COUNT

Prints one JSON object on stdout: {"records": [[partition, offset, value],
...]} in the order consumed.
"""

import json
import sys

from confluent_kafka import Consumer, KafkaException


def main():
    bootstrap, topic, rack, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "rack-" + rack,
        "client.rack": rack,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 200,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    c.subscribe([topic])
    out = []
    try:
        while len(out) < count:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append([m.partition(), m.offset(), m.value().decode()])
    finally:
        c.close()
    json.dump({"records": out}, sys.stdout)


if __name__ == "__main__":
    main()
