81010f0a0b0c0d0e0f01020304050607080f
{"id":3,"addr":"10.0.0.3:9094","raft_addr":"10.0.0.3:9093","listeners":[{"name":"CLIENTS","addr":"broker3.example.com:9092"},{"name":"INTERNAL","addr":"10.0.0.3:9094"}]}
