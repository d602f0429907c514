package auth

import (
	"testing"
	"time"
)

func TestRevocationRoundTrip(t *testing.T) {
	until := time.UnixMilli(1_900_000_000_123)
	for _, r := range []Revocation{
		{JTI: "9f2c", Until: until},
		{Subject: "alice: the one", Before: time.UnixMilli(1_800_000_000_000), Until: until},
	} {
		back, err := ParseStoredRevocation(r.Key(), r.StoredValue())
		if err != nil || back.Key() != r.Key() || !back.Before.Equal(r.Before) || !back.Until.Equal(r.Until) {
			t.Errorf("stored %+v came back %+v, %v", r, back, err)
		}
		ann, err := DecodeAnnouncement(r.EncodeAnnouncement())
		if err != nil || ann.Key() != r.Key() || !ann.Until.Equal(r.Until) {
			t.Errorf("announced %+v came back %+v, %v", r, ann, err)
		}
	}
	for _, bad := range []struct{ key, value string }{
		{"jti:", "0 1"}, {"sub:bob", "0 1"}, {"user:bob", "0 1"}, {"jti:a", "1"}, {"jti:a", "-1 5"}, {"jti:a", "0 0"}, {"jti:a", "x y"},
	} {
		if _, err := ParseStoredRevocation(bad.key, bad.value); err == nil {
			t.Errorf("%q = %q accepted", bad.key, bad.value)
		}
	}
}

// FuzzRevocation: whatever Redis holds, reading it never panics, and what
// is accepted reads back the same from its own encoding.
func FuzzRevocation(f *testing.F) {
	f.Add("jti:abc", "0 1900000000000")
	f.Add("sub:bob", "1800000000000 1900000000000")
	f.Add("sub:", "1 2")
	f.Add("jti:x", "99999999999999999999 1")
	f.Fuzz(func(t *testing.T, key, value string) {
		r, err := ParseStoredRevocation(key, value)
		if err != nil {
			return
		}
		back, err := ParseStoredRevocation(r.Key(), r.StoredValue())
		if err != nil || back != r {
			t.Fatalf("%q %q: %+v came back %+v, %v", key, value, r, back, err)
		}
		if _, err := DecodeAnnouncement(r.EncodeAnnouncement()); err != nil {
			t.Fatalf("announcement of %+v refused: %v", r, err)
		}
	})
}
