81161f0a0b0c0d0e0f01020304050607081f
{"broker":2,"configs":{"log.level":"debug"}}
