8116200a0b0c0d0e0f010203040506070820
{"broker":1,"configs":{"log.segment.bytes":"1048576"}}
