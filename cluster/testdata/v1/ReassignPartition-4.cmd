81172c0a0b0c0d0e0f01020304050607082c
{"tp":{"topic":"orders","partition":2},"target":[1]}
