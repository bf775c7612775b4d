8115140a0b0c0d0e0f010203040506070814
{"entries":[{"entity":[{"type":"user","name":"app"},{"type":"client-id","name":"loader"}],"set":{"consumer_byte_rate":2097152,"producer_byte_rate":1048576}},{"entity":[{"type":"user","name":null}],"set":{"request_percentage":12.5}},{"entity":[{"type":"client-id","name":null}],"set":{"producer_byte_rate":65536}}]}
