8116140a0b0c0d0e0f010203040506070814
{"broker":-1,"configs":{"log.cleaner.io.max.bytes.per.second":"1048576","log.retention.ms":"86400000"}}
