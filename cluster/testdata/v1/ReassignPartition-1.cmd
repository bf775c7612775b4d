8117290a0b0c0d0e0f010203040506070829
{"tp":{"topic":"orders","partition":0},"target":[3,1]}
