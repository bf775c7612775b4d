package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors decoding a request frame. Each closes the connection: the stream
// cannot be answered in a form the client would understand.
var (
	ErrShortHeader    = errors.New("server: request header truncated")
	ErrUnknownAPI     = errors.New("server: unknown API key")
	ErrBadVersion     = errors.New("server: unsupported API version")
	ErrMalformedTags  = errors.New("server: malformed tagged fields in request header")
	ErrMalformedBody  = errors.New("server: malformed request body")
	ErrFrameTooLarge  = errors.New("server: request larger than the maximum request size")
	ErrNegativeLength = errors.New("server: negative frame length")
)

// requestHeader is a decoded Kafka request header (v1 or v2).
type requestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
	Flexible      bool // header v2 and a flexible body
}

// parseHeader decodes the request header at the start of frame and returns
// it with the body that follows. It does not check the API key or version
// against what the server supports; it does need to know whether the
// (key, version) pair is flexible, so an unknown key is an error.
func parseHeader(frame []byte) (requestHeader, []byte, error) {
	var h requestHeader
	if len(frame) < 10 {
		return h, nil, ErrShortHeader
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	n := int16(binary.BigEndian.Uint16(frame[8:]))
	b := frame[10:]
	if n >= 0 {
		if int(n) > len(b) {
			return h, nil, ErrShortHeader
		}
		h.ClientID, b = string(b[:n]), b[n:]
	} else if n != -1 {
		return h, nil, fmt.Errorf("%w: client id length %d", ErrShortHeader, n)
	}
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, nil, fmt.Errorf("%w: %d", ErrUnknownAPI, h.Key)
	}
	if h.Version < 0 {
		return h, nil, fmt.Errorf("%w: %d", ErrBadVersion, h.Version)
	}
	req.SetVersion(h.Version)
	h.Flexible = req.IsFlexible()
	if h.Flexible {
		rest, err := skipTags(b)
		if err != nil {
			return h, nil, err
		}
		b = rest
	}
	return h, b, nil
}

// skipTags skips a tagged-field section: a count, then per field a tag, a
// size and that many bytes.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, ErrMalformedTags
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, ErrMalformedTags
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, ErrMalformedTags
		}
		b = b[n+int(size):]
	}
	return b, nil
}
