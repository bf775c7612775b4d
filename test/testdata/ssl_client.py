"""Produces and consumes over an SSL listener with kafka-python, a client
that is not runnel's, the way its users configure it.

    ssl_client.py BOOTSTRAP CAFILE [CERTFILE KEYFILE]

Sends 20 records to topic "py-ssl", reads them back from the start, and
prints one JSON object: {"sent": n, "received": [values...]}. With
CERTFILE and KEYFILE it presents a client certificate (mTLS).
"""

import json
import sys

from kafka import KafkaConsumer, KafkaProducer


def main():
    bootstrap, cafile = sys.argv[1], sys.argv[2]
    ssl = {"security_protocol": "SSL", "ssl_cafile": cafile, "ssl_check_hostname": True}
    if len(sys.argv) > 4:
        ssl.update(ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **ssl)
    for i in range(20):
        producer.send("py-ssl", key=b"k%d" % i, value=b"value %d" % i).get(timeout=30)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer("py-ssl", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=10000, **ssl)
    received = []
    for msg in consumer:
        received.append(msg.value.decode())
        if len(received) == 20:
            break
    consumer.close()
    print(json.dumps({"sent": 20, "received": received}))


if __name__ == "__main__":
    main()
