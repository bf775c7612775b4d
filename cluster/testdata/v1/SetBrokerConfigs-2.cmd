8116150a0b0c0d0e0f010203040506070815
{"broker":2,"configs":{"log.level":"debug"}}
