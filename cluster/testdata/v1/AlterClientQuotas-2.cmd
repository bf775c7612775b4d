8115150a0b0c0d0e0f010203040506070815
{"entries":[{"entity":[{"type":"user","name":"app"},{"type":"client-id","name":"loader"}],"remove":["consumer_byte_rate"]},{"entity":[{"type":"client-id","name":null}],"remove":["producer_byte_rate"]}]}
