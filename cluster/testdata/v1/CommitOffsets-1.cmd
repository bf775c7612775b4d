810b00000000000000000000000000000000
{"group":"billing","offsets":[{"topic":"orders","partition":0,"offset":4200,"leader_epoch":0,"metadata":"m","commit_ms":1700000000123},{"topic":"orders","partition":1,"offset":17,"leader_epoch":1,"commit_ms":1700000000456}]}
