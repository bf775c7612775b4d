810c080a0b0c0d0e0f010203040506070808
{"group":"billing","partitions":[{"topic":"orders","partition":1}]}
