// Package wsframe is RFC 6455 framing, written once for every pongcast
// binary: frame headers (encode and strict parse), masking, and close
// payloads. It knows nothing of handshakes, messages or sockets.
//
// It is pure code with no package state that changes; every function is
// safe to call concurrently.
package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Opcode is a frame's opcode (RFC 6455 5.2).
type Opcode byte

// The opcodes RFC 6455 defines; the others are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (close, ping, pong or
// a reserved control opcode).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

func (op Opcode) valid() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

// Sizes from RFC 6455 5.2 and 5.5.
const (
	// MaxHeaderLen is the longest header: 2 bytes, an 8-byte length and
	// a 4-byte mask key.
	MaxHeaderLen = 14
	// MaxControlPayload is the largest payload a control frame may carry.
	MaxControlPayload = 125
	// MaxCloseReason is the longest close reason: the payload less the
	// 2-byte code.
	MaxCloseReason = MaxControlPayload - 2
)

// Header is one frame header. RSV holds the three reserved bits as RSV1
// = 4, RSV2 = 2, RSV3 = 1; with no extension negotiated they must be 0.
type Header struct {
	Fin    bool
	RSV    byte
	Opcode Opcode
	Masked bool
	Mask   [4]byte
	Length int64 // payload bytes
}

// Errors of Parse and Read. ErrShort means more bytes are needed; every
// other error means the bytes can never become a valid header.
var (
	ErrShort          = errors.New("wsframe: incomplete header")
	ErrReservedOpcode = errors.New("wsframe: reserved opcode")
	ErrReservedBits   = errors.New("wsframe: reserved bits set")
	ErrControlFrame   = errors.New("wsframe: control frame fragmented or over 125 bytes")
	ErrLength         = errors.New("wsframe: length not minimally encoded or over 2^63-1")
)

// Len is the encoded size of h.
func (h Header) Len() int {
	n := 2
	switch {
	case h.Length > 0xFFFF:
		n += 8
	case h.Length > 125:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// HeaderLen is the size of an unmasked header for a payload of n bytes:
// what a server frame needs in front of its payload.
func HeaderLen(n int) int { return Header{Length: int64(n)}.Len() }

// AppendHeader appends h, encoded with the minimal length form, to dst.
// A negative Length is encoded as 0.
func AppendHeader(dst []byte, h Header) []byte {
	b0 := byte(h.Opcode&0x0F) | (h.RSV&0x7)<<4
	if h.Fin {
		b0 |= 0x80
	}
	var mask byte
	if h.Masked {
		mask = 0x80
	}
	n := max(h.Length, 0)
	switch {
	case n > 0xFFFF:
		dst = append(dst, b0, mask|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	case n > 125:
		dst = append(dst, b0, mask|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, mask|byte(n))
	}
	if h.Masked {
		dst = append(dst, h.Mask[:]...)
	}
	return dst
}

// Parse reads a header from the front of b and returns it with its
// encoded size. It is strict: reserved opcodes, reserved bits, a control
// frame that is fragmented or longer than 125 bytes, and a length not in
// its minimal form are errors. It returns ErrShort while b holds only part
// of a header.
func Parse(b []byte) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 0, ErrShort
	}
	h := Header{
		Fin:    b[0]&0x80 != 0,
		RSV:    (b[0] >> 4) & 0x7,
		Opcode: Opcode(b[0] & 0x0F),
		Masked: b[1]&0x80 != 0,
	}
	n := 2
	switch l := b[1] & 0x7F; l {
	case 126:
		if len(b) < n+2 {
			return Header{}, 0, ErrShort
		}
		h.Length = int64(binary.BigEndian.Uint16(b[n:]))
		n += 2
		if h.Length <= 125 {
			return Header{}, 0, ErrLength
		}
	case 127:
		if len(b) < n+8 {
			return Header{}, 0, ErrShort
		}
		u := binary.BigEndian.Uint64(b[n:])
		n += 8
		if u>>63 != 0 || u <= 0xFFFF {
			return Header{}, 0, ErrLength
		}
		h.Length = int64(u)
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return Header{}, 0, ErrShort
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	if err := h.check(); err != nil {
		return Header{}, 0, err
	}
	return h, n, nil
}

func (h Header) check() error {
	switch {
	case !h.Opcode.valid():
		return fmt.Errorf("%w %#x", ErrReservedOpcode, byte(h.Opcode))
	case h.RSV != 0:
		return ErrReservedBits
	case h.Opcode.IsControl() && (!h.Fin || h.Length > MaxControlPayload):
		return ErrControlFrame
	}
	return nil
}

// Read reads one header from r with Parse's rules. It reads exactly the
// header's bytes, so the payload follows in r. An r that ends inside a
// header gives io.ErrUnexpectedEOF; one that ends before it, io.EOF.
func Read(r io.Reader) (Header, error) {
	var buf [MaxHeaderLen]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return Header{}, err
	}
	need := 2
	switch buf[1] & 0x7F {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if buf[1]&0x80 != 0 {
		need += 4
	}
	if _, err := io.ReadFull(r, buf[2:need]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	h, _, err := Parse(buf[:need])
	return h, err
}

// MaskBytes XORs b in place with key, starting at position pos of the
// key stream (0 for the start of a payload), and returns the position
// after b, so a payload can be masked in pieces. Masking and unmasking are
// the same operation.
func MaskBytes(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

// AppendFrame appends a whole final frame of opcode op carrying payload,
// masked with *mask when mask is not nil (as a client must), to dst.
func AppendFrame(dst []byte, op Opcode, payload []byte, mask *[4]byte) []byte {
	h := Header{Fin: true, Opcode: op, Length: int64(len(payload))}
	if mask != nil {
		h.Masked, h.Mask = true, *mask
	}
	dst = AppendHeader(dst, h)
	start := len(dst)
	dst = append(dst, payload...)
	if mask != nil {
		MaskBytes(*mask, 0, dst[start:])
	}
	return dst
}

// Close status codes pongcast uses or must recognise (RFC 6455 7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005 // never on the wire: a close frame without a code
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
)

// ErrClosePayload is a close payload that RFC 6455 forbids.
var ErrClosePayload = errors.New("wsframe: invalid close payload")

// AppendClosePayload appends the payload of a close frame with code and
// reason, the reason cut to MaxCloseReason bytes at a UTF-8 boundary.
func AppendClosePayload(dst []byte, code int, reason string) []byte {
	if len(reason) > MaxCloseReason {
		cut := MaxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// ParseClosePayload returns the code and reason of a close payload. An
// empty payload is CloseNoStatus. A one-byte payload, a code that may not
// be sent, or a reason that is not UTF-8 is ErrClosePayload.
func ParseClosePayload(p []byte) (int, string, error) {
	if len(p) == 0 {
		return CloseNoStatus, "", nil
	}
	if len(p) < 2 || len(p) > MaxControlPayload {
		return 0, "", ErrClosePayload
	}
	code := int(binary.BigEndian.Uint16(p))
	if !SendableCloseCode(code) || !utf8.Valid(p[2:]) {
		return 0, "", ErrClosePayload
	}
	return code, string(p[2:]), nil
}

// SendableCloseCode reports whether code may appear in a close frame:
// 1000-1003, 1007-1014, and 3000-4999 (RFC 6455 7.4).
func SendableCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
