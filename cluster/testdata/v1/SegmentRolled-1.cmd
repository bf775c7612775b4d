810900000000000000000000000000000000
{"tp":{"topic":"orders","partition":0},"base":0}
