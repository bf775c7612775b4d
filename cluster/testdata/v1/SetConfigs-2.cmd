8106220a0b0c0d0e0f010203040506070822
{"name":"orders","configs":{"cleanup.policy":"delete","retention.ms":"3600000"},"prev":{"cleanup.policy":"delete"}}
