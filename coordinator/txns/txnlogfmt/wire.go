package txnlogfmt

import (
	"errors"
	"fmt"
)

// Errors of the decoders and encoders.
var (
	// ErrMalformed: the bytes do not parse with the schema of their
	// version.
	ErrMalformed = errors.New("txnlogfmt: malformed record")
	// ErrUnknownVersion matches every *UnknownVersionError.
	ErrUnknownVersion = errors.New("txnlogfmt: unknown record version")
	// ErrTooLong: an encoder was given a string longer than an int16
	// length can carry.
	ErrTooLong = errors.New("txnlogfmt: string too long for the record")
)

// UnknownVersionError reports a key or value of a version this package
// does not read.
type UnknownVersionError struct {
	Record  string // "key" or "value"
	Version int16
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("txnlogfmt: unknown %s version %d", e.Record, e.Version)
}

// Is lets errors.Is(err, ErrUnknownVersion) match.
func (e *UnknownVersionError) Is(target error) bool { return target == ErrUnknownVersion }
