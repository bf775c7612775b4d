810f110a0b0c0d0e0f010203040506070811
{"deletions":[{"user":"old","mechanism":1}],"upsertions":[{"user":"admin","mechanism":2,"salt":"YW5vdGhlciBzYWx0","iterations":4096,"stored_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==","server_key":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==","if_absent":true}]}
