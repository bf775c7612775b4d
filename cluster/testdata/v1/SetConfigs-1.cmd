8106050a0b0c0d0e0f010203040506070805
{"name":"orders","configs":{"cleanup.policy":"delete"}}
