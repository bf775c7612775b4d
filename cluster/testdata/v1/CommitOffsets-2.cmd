810b00000000000000000000000000000000
{"group":"audit","offsets":[{"topic":"orders","partition":2,"offset":3,"leader_epoch":-1,"commit_ms":1700000000789}]}
