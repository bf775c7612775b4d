package offsetsfmt

import (
	"errors"
	"fmt"
)

// Errors of the decoders and encoders.
var (
	// ErrMalformed: the bytes do not parse with the schema of their
	// version (a length or count past the input, a null where the schema
	// allows none, a negative count).
	ErrMalformed = errors.New("offsetsfmt: malformed record")
	// ErrUnknownVersion matches every *UnknownVersionError.
	ErrUnknownVersion = errors.New("offsetsfmt: unknown record version")
	// ErrTooLong: an encoder was given a string longer than an int16
	// length can carry (or bytes longer than an int32 one).
	ErrTooLong = errors.New("offsetsfmt: string too long for the record")
)

// UnknownVersionError reports a key or value whose version this package does
// not read. Kafka writes keys of versions above 2 for its newer group types;
// a loader skips such records with a log line.
type UnknownVersionError struct {
	Record  string // "key", "offset commit value" or "group metadata value"
	Version int16
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("offsetsfmt: unknown %s version %d", e.Record, e.Version)
}

// Is lets errors.Is(err, ErrUnknownVersion) match.
func (e *UnknownVersionError) Is(target error) bool { return target == ErrUnknownVersion }
