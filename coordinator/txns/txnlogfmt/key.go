package txnlogfmt

// KeyVersion is the version of TransactionLogKey, the only one Kafka has
// defined.
const KeyVersion int16 = 0

// AppendKey appends the key of a transactional id's record. Only an id
// longer than 32767 bytes fails (ErrTooLong), and dst is then returned as
// it was.
func AppendKey(dst []byte, transactionalID string) ([]byte, error) {
	w := writer{b: dst}
	w.int16(KeyVersion)
	w.string("transactionalId", transactionalID)
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

// DecodeKey decodes a key of __transaction_state and returns its
// transactional id.
func DecodeKey(b []byte) (string, error) {
	r := reader{b: b, record: "key"}
	v := r.int16("version")
	if r.err != nil {
		return "", r.err
	}
	if v != KeyVersion {
		return "", &UnknownVersionError{Record: "key", Version: v}
	}
	id := r.string("transactionalId")
	if r.err != nil {
		return "", r.err
	}
	return id, nil
}
