8103030a0b0c0d0e0f010203040506070803
{"name":"orders","id":"3f2a1b0c-4d5e-4670-8192-a3b4c5d6e7f8","replication_factor":2,"configs":{"retention.ms":"604800000"},"assignment":[[1,2],[2,1]]}
