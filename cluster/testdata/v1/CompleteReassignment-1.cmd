81182d0a0b0c0d0e0f01020304050607082d
{"tp":{"topic":"orders","partition":2},"partition_epoch":4}
