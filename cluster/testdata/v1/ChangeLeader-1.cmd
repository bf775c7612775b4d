8107060a0b0c0d0e0f010203040506070806
{"tp":{"topic":"orders","partition":1},"prev_epoch":0,"leader":1,"isr":[1,2]}
