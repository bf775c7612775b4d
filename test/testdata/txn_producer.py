"""A librdkafka transactional producer (confluent-kafka), for
test/txn_coordinator_test.go: it runs the transactions named on the command
line against one broker and prints one JSON line when they all ended.

usage: txn_producer.py BROKER TOPIC TRANSACTIONAL_ID SPEC...
where each SPEC is commit:PREFIX:N or abort:PREFIX:N, N records PREFIX-0..
to partition 0 of TOPIC.
"""
import json
import sys

from confluent_kafka import Producer


def main():
    broker, topic, txn_id = sys.argv[1:4]
    p = Producer({"bootstrap.servers": broker, "transactional.id": txn_id,
                  "transaction.timeout.ms": 60000, "enable.idempotence": True})
    p.init_transactions(30)
    done = []
    for spec in sys.argv[4:]:
        end, prefix, n = spec.split(":")
        p.begin_transaction()
        for i in range(int(n)):
            p.produce(topic, value=("%s-%d" % (prefix, i)).encode(), partition=0)
        p.flush(30)
        if end == "commit":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        done.append(spec)
    print(json.dumps({"done": done}))


if __name__ == "__main__":
    main()
