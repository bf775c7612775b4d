package txnlogfmt

import "github.com/runnel-io/runnel/internal/kwire"

// KeyVersion is the version of TransactionLogKey, the only one Kafka has
// defined.
const KeyVersion int16 = 0

// AppendKey appends the key of a transactional id's record. Only an id
// longer than 32767 bytes fails (ErrTooLong), and dst is then returned as
// it was.
func AppendKey(dst []byte, transactionalID string) ([]byte, error) {
	w := kwire.Writer{B: dst, TooLong: ErrTooLong}
	w.Int16(KeyVersion)
	w.String("transactionalId", transactionalID)
	if w.Err != nil {
		return dst, w.Err
	}
	return w.B, nil
}

// DecodeKey decodes a key of __transaction_state and returns its
// transactional id.
func DecodeKey(b []byte) (string, error) {
	r := kwire.Reader{B: b, Record: "key", Malformed: ErrMalformed}
	v := r.Int16("version")
	if r.Err != nil {
		return "", r.Err
	}
	if v != KeyVersion {
		return "", &UnknownVersionError{Record: "key", Version: v}
	}
	id := r.String("transactionalId")
	if r.Err != nil {
		return "", r.Err
	}
	return id, nil
}
