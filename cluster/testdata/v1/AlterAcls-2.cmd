8114130a0b0c0d0e0f010203040506070813
{"deletions":[{"resource_type":2,"resource_name":"*","pattern_type":3,"principal":"User:*","host":"*","operation":4,"permission":2}],"creations":[{"resource_type":5,"resource_name":"tx-","pattern_type":4,"principal":"User:app","host":"*","operation":4,"permission":3}]}
