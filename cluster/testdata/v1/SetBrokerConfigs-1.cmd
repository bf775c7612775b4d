81161e0a0b0c0d0e0f01020304050607081e
{"broker":-1,"configs":{"log.cleaner.io.max.bytes.per.second":"1048576","log.retention.ms":"86400000"}}
