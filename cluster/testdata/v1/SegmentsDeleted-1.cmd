810a00000000000000000000000000000000
{"tp":{"topic":"orders","partition":0},"log_start":4100}
