81172a0a0b0c0d0e0f01020304050607082a
{"tp":{"topic":"orders","partition":2},"target":[4,1]}
