81172b0a0b0c0d0e0f01020304050607082b
{"tp":{"topic":"orders","partition":2},"cancel":true}
