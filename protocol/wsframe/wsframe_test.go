package wsframe

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestAppendHeaderLengthForms(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want []byte
	}{
		{"empty text", Header{Fin: true, Opcode: OpText}, []byte{0x81, 0x00}},
		{"125 in 7 bits", Header{Fin: true, Opcode: OpText, Length: 125}, []byte{0x81, 125}},
		{"126 in 16 bits", Header{Fin: true, Opcode: OpText, Length: 126}, []byte{0x81, 126, 0x00, 126}},
		{"65535 in 16 bits", Header{Fin: true, Opcode: OpBinary, Length: 65535}, []byte{0x82, 126, 0xFF, 0xFF}},
		{"65536 in 64 bits", Header{Fin: true, Opcode: OpText, Length: 65536}, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"not final", Header{Opcode: OpText, Length: 3}, []byte{0x01, 0x03}},
		{"continuation", Header{Fin: true, Opcode: OpContinuation, Length: 1}, []byte{0x80, 0x01}},
		{"masked ping", Header{Fin: true, Opcode: OpPing, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 4},
			[]byte{0x89, 0x84, 1, 2, 3, 4}},
		{"close", Header{Fin: true, Opcode: OpClose, Length: 2}, []byte{0x88, 0x02}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendHeader(nil, tt.h)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("AppendHeader = % x, want % x", got, tt.want)
			}
			if tt.h.Len() != len(got) {
				t.Fatalf("Len = %d, encoded %d", tt.h.Len(), len(got))
			}
			h, n, err := Parse(got)
			if err != nil || n != len(got) || h != tt.h {
				t.Fatalf("Parse = %+v, %d, %v; want %+v, %d", h, n, err, tt.h, len(got))
			}
		})
	}
}

func TestParseRefusesWhatRFC6455Forbids(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"reserved data opcode", []byte{0x83, 0x00}, ErrReservedOpcode},
		{"reserved control opcode", []byte{0x8B, 0x00}, ErrReservedOpcode},
		{"rsv1", []byte{0xC1, 0x00}, ErrReservedBits},
		{"rsv3", []byte{0x91, 0x00}, ErrReservedBits},
		{"fragmented ping", []byte{0x09, 0x00}, ErrControlFrame},
		{"long close", []byte{0x88, 126, 0x00, 126}, ErrControlFrame},
		{"16-bit form for 125", []byte{0x81, 126, 0x00, 125}, ErrLength},
		{"64-bit form for 65535", []byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, ErrLength},
		{"64-bit length with the top bit", []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, ErrLength},
		{"one byte", []byte{0x81}, ErrShort},
		{"16-bit length cut", []byte{0x81, 126, 0x01}, ErrShort},
		{"64-bit length cut", []byte{0x81, 127, 0, 0, 0}, ErrShort},
		{"mask cut", []byte{0x81, 0x81, 1, 2, 3}, ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(% x) = %v, want %v", tt.b, err, tt.want)
			}
		})
	}
}

func TestReadTakesExactlyTheHeader(t *testing.T) {
	mask := [4]byte{9, 8, 7, 6}
	frame := AppendFrame(nil, OpText, []byte("hello"), &mask)
	r := bytes.NewReader(append(frame, 0xEE))
	h, err := Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Fin || h.Opcode != OpText || !h.Masked || h.Mask != mask || h.Length != 5 {
		t.Fatalf("Read = %+v", h)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	MaskBytes(h.Mask, 0, payload)
	if string(payload) != "hello" {
		t.Fatalf("payload %q", payload)
	}
	if b, _ := r.ReadByte(); b != 0xEE {
		t.Fatalf("Read took more than the frame: next byte %#x", b)
	}

	if _, err := Read(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("Read(empty) = %v, want io.EOF", err)
	}
	if _, err := Read(bytes.NewReader([]byte{0x81, 126, 1})); err != io.ErrUnexpectedEOF {
		t.Fatalf("Read(cut) = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestMaskBytesInPieces(t *testing.T) {
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	msg := []byte("a payload masked in uneven pieces")
	whole := bytes.Clone(msg)
	MaskBytes(key, 0, whole)
	pieces := bytes.Clone(msg)
	pos := 0
	for i := 0; i < len(pieces); {
		j := min(len(pieces), i+1+i%5)
		pos = MaskBytes(key, pos, pieces[i:j])
		i = j
	}
	if !bytes.Equal(whole, pieces) {
		t.Fatal("masking in pieces differs from masking whole")
	}
	MaskBytes(key, 0, whole)
	if !bytes.Equal(whole, msg) {
		t.Fatal("masking twice does not restore the payload")
	}
}

func TestClosePayload(t *testing.T) {
	tests := []struct {
		name       string
		p          []byte
		wantCode   int
		wantReason string
		wantErr    bool
	}{
		{"empty is no status", nil, CloseNoStatus, "", false},
		{"code only", []byte{0x03, 0xE8}, CloseNormal, "", false},
		{"code and reason", AppendClosePayload(nil, ClosePolicyViolation, "slow consumer"), ClosePolicyViolation, "slow consumer", false},
		{"one byte", []byte{0x03}, 0, "", true},
		{"1005 may not be sent", []byte{0x03, 0xED}, 0, "", true},
		{"1006 may not be sent", []byte{0x03, 0xEE}, 0, "", true},
		{"999", []byte{0x03, 0xE7}, 0, "", true},
		{"3000 is an application code", []byte{0x0B, 0xB8}, 3000, "", false},
		{"reason not UTF-8", []byte{0x03, 0xE8, 0xFF}, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := ParseClosePayload(tt.p)
			if (err != nil) != tt.wantErr || code != tt.wantCode || reason != tt.wantReason {
				t.Fatalf("ParseClosePayload(% x) = %d, %q, %v", tt.p, code, reason, err)
			}
		})
	}
}

func TestCloseReasonCutAtRuneBoundary(t *testing.T) {
	reason := strings.Repeat("a", MaxCloseReason-1) + "é" // the é straddles the limit
	p := AppendClosePayload(nil, CloseNormal, reason)
	if len(p) > MaxControlPayload {
		t.Fatalf("payload of %d bytes", len(p))
	}
	if _, got, err := ParseClosePayload(p); err != nil || got != strings.Repeat("a", MaxCloseReason-1) {
		t.Fatalf("reason %q, %v", got, err)
	}
}
