"""Changes and reads configs with kafka-python's admin client, as an
operator's script that knows nothing of runnel does.

    configs.py BOOTSTRAP TOPIC BROKER_ID

Sets the topic's retention.ms (AlterConfigs) and broker BROKER_ID's
log.cleaner.io.max.bytes.per.second, then describes both and prints one
JSON object: {"topic": {name: [value, source, is_default]},
"broker": {name: [value, source, read_only, sensitive]}}. An error answer
is printed as {"error": ...}.
"""

import json
import sys

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient


def main():
    bootstrap, topic, broker = sys.argv[1], sys.argv[2], sys.argv[3]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="configs-test")
    out = {}
    try:
        for resp in [
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000"})]),
            admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, broker,
                                                configs={"log.cleaner.io.max.bytes.per.second": "1048576"})]),
        ]:
            for code, msg, _, name in resp.resources:
                if code != 0:
                    out.setdefault("errors", []).append([name, code, msg])
        for resp in admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]):
            for code, msg, _, _, entries in resp.resources:
                if code != 0:
                    out.setdefault("errors", []).append([topic, code, msg])
                out["topic"] = {e[0]: [e[1], e[3], e[3] == 5] for e in entries} if resp.API_VERSION >= 1 else \
                    {e[0]: [e[1], None, e[3]] for e in entries}
        for resp in admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, broker)]):
            for code, msg, _, _, entries in resp.resources:
                if code != 0:
                    out.setdefault("errors", []).append([broker, code, msg])
                if resp.API_VERSION >= 1:
                    out["broker"] = {e[0]: [e[1], e[3], e[2], e[4]] for e in entries}
                else:
                    out["broker"] = {e[0]: [e[1], None, e[2], e[4]] for e in entries}
    finally:
        admin.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
