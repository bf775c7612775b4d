8108070a0b0c0d0e0f010203040506070807
{"tp":{"topic":"orders","partition":1},"leader":1,"leader_epoch":1,"partition_epoch":1,"isr":[1]}
