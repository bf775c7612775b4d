8116230a0b0c0d0e0f010203040506070823
{"broker":2,"configs":{"log.level":"info"},"prev":{"log.level":"debug"}}
