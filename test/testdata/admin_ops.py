"""ElectLeaders v1 and DescribeLogDirs v1 from kafka-python.

kafka-python 2.0 has no admin calls for these two APIs, so the requests
and responses are declared here with its protocol types (its own encoder
and decoder, independent of franz-go) and sent with its admin client's
connection.

    admin_ops.py logdirs BOOTSTRAP
        every broker's answer to DescribeLogDirs with null topics, as
        {"<node id>": [{"dir", "error", "partitions": {"topic-p": [size, lag]}}]}
    admin_ops.py elect BOOTSTRAP TYPE [TOPIC:PARTITION ...]
        ElectLeaders to the controller (no partitions: null, every one), as
        {"error": code, "results": {"topic-p": [code, message]}}
"""

import json
import sys

from kafka import KafkaAdminClient
from kafka.protocol.api import Request, Response
from kafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Int64, Schema, String


class DescribeLogDirsResponse_v1(Response):
    API_KEY = 35
    API_VERSION = 1
    SCHEMA = Schema(
        ('throttle_time_ms', Int32),
        ('results', Array(
            ('error_code', Int16),
            ('log_dir', String('utf-8')),
            ('topics', Array(
                ('name', String('utf-8')),
                ('partitions', Array(
                    ('partition_index', Int32),
                    ('partition_size', Int64),
                    ('offset_lag', Int64),
                    ('is_future_key', Boolean))))))))


class DescribeLogDirsRequest_v1(Request):
    API_KEY = 35
    API_VERSION = 1
    RESPONSE_TYPE = DescribeLogDirsResponse_v1
    SCHEMA = Schema(
        ('topics', Array(
            ('topic', String('utf-8')),
            ('partitions', Array(Int32)))))


class ElectLeadersResponse_v1(Response):
    API_KEY = 43
    API_VERSION = 1
    SCHEMA = Schema(
        ('throttle_time_ms', Int32),
        ('error_code', Int16),
        ('replica_election_results', Array(
            ('topic', String('utf-8')),
            ('partition_result', Array(
                ('partition_id', Int32),
                ('error_code', Int16),
                ('error_message', String('utf-8')))))))


class ElectLeadersRequest_v1(Request):
    API_KEY = 43
    API_VERSION = 1
    RESPONSE_TYPE = ElectLeadersResponse_v1
    SCHEMA = Schema(
        ('election_type', Int8),
        ('topic_partitions', Array(
            ('topic', String('utf-8')),
            ('partition_id', Array(Int32)))),
        ('timeout_ms', Int32))


def call(admin, node, request):
    future = admin._send_request_to_node(node, request)
    admin._wait_for_futures([future])
    return future.value


def logdirs(admin):
    out = {}
    for broker in admin._client.cluster.brokers():
        resp = call(admin, broker.nodeId, DescribeLogDirsRequest_v1(None))
        dirs = []
        for error, path, topics in resp.results:
            parts = {}
            for name, partitions in topics:
                for index, size, lag, future in partitions:
                    parts['%s-%d' % (name, index)] = [size, lag]
            dirs.append({'dir': path, 'error': error, 'partitions': parts})
        out[str(broker.nodeId)] = dirs
    return out


def elect(admin, election_type, names):
    topics = None
    if names:
        by_topic = {}
        for n in names:
            topic, partition = n.rsplit(':', 1)
            by_topic.setdefault(topic, []).append(int(partition))
        topics = list(by_topic.items())
    admin._refresh_controller_id()
    resp = call(admin, admin._controller_id, ElectLeadersRequest_v1(int(election_type), topics, 30000))
    results = {}
    for topic, partitions in resp.replica_election_results:
        for index, code, message in partitions:
            results['%s-%d' % (topic, index)] = [code, message]
    return {'error': resp.error_code, 'results': results}


def main():
    mode, bootstrap = sys.argv[1], sys.argv[2]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(','), client_id='admin-ops-py',
                             request_timeout_ms=30000)
    try:
        if mode == 'logdirs':
            out = logdirs(admin)
        else:
            out = elect(admin, sys.argv[3], sys.argv[4:])
    finally:
        admin.close()
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
