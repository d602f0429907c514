package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds Parse any bytes: it never panics, and whatever it
// accepts re-encodes to exactly the bytes it read (the minimal form is
// the only form), with a length the header's size accounts for.
func FuzzParse(f *testing.F) {
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x89, 0x84, 1, 2, 3, 4, 'a', 'b', 'c', 'd'})
	f.Add([]byte{0x81, 126, 0x01, 0x00})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x88, 0x02, 0x03, 0xE8})
	f.Add([]byte{0xC1, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with size %d", err, n)
			}
			return
		}
		if n != h.Len() || n > len(b) || n > MaxHeaderLen {
			t.Fatalf("size %d, Len %d, input %d", n, h.Len(), len(b))
		}
		if enc := AppendHeader(nil, h); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded % x, read % x", enc, b[:n])
		}
		if r, err := Read(bytes.NewReader(b)); err != nil || r != h {
			t.Fatalf("Read = %+v, %v; Parse = %+v", r, err, h)
		}
	})
}

// FuzzRoundTrip encodes a header built from the fuzzer's values: every
// valid one parses back to itself, and every prefix of it is ErrShort.
func FuzzRoundTrip(f *testing.F) {
	f.Add(true, byte(0), byte(1), false, uint32(0), int64(5))
	f.Add(false, byte(0), byte(0), true, uint32(0xDEADBEEF), int64(70000))
	f.Add(true, byte(0), byte(9), true, uint32(7), int64(125))
	f.Fuzz(func(t *testing.T, fin bool, rsv, op byte, masked bool, key uint32, length int64) {
		h := Header{Fin: fin, RSV: rsv & 7, Opcode: Opcode(op & 0x0F), Masked: masked, Length: max(length, 0)}
		if masked {
			h.Mask = [4]byte{byte(key), byte(key >> 8), byte(key >> 16), byte(key >> 24)}
		}
		enc := AppendHeader(nil, h)
		got, n, err := Parse(enc)
		if h.check() != nil {
			if err == nil {
				t.Fatalf("Parse accepted invalid %+v", h)
			}
			return
		}
		if err != nil || got != h || n != len(enc) {
			t.Fatalf("Parse(AppendHeader(%+v)) = %+v, %d, %v", h, got, n, err)
		}
		for i := range len(enc) {
			if _, _, err := Parse(enc[:i]); !errors.Is(err, ErrShort) {
				t.Fatalf("prefix of %d bytes: %v, want ErrShort", i, err)
			}
		}
	})
}

// FuzzClosePayload: ParseClosePayload never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzClosePayload(f *testing.F) {
	f.Add([]byte{0x03, 0xE8})
	f.Add([]byte{0x03, 0xF0, 's', 'l', 'o', 'w'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClosePayload(p)
		if err != nil || len(p) == 0 {
			return
		}
		if enc := AppendClosePayload(nil, code, reason); !bytes.Equal(enc, p) {
			t.Fatalf("re-encoded % x, read % x", enc, p)
		}
	})
}
