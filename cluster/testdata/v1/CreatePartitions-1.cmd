8105040a0b0c0d0e0f010203040506070804
{"name":"orders","total":3,"assignment":[[1,2]]}
