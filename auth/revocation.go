package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Revocation is one entry of the revocation list that `pongctl token
// revoke` writes and every server holds: it covers either the token with
// one jti, or the tokens of one subject issued before a time.
type Revocation struct {
	// JTI, if set, covers the token whose jti claim (as decoded, however
	// its JSON spells it) is JTI. Subject and Before are then unused.
	JTI string
	// Subject, with JTI empty, covers the tokens of that sub whose iat is
	// earlier than Before; a token without iat is covered too, since
	// nothing says it was issued after.
	Subject string
	Before  time.Time
	// Until is when the entry may be forgotten: every token it covers
	// has expired (with the leeway) by then.
	Until time.Time
}

// ErrBadRevocation wraps every reason a revocation entry is refused.
var ErrBadRevocation = errors.New("auth: bad revocation")

// Revocation key prefixes: an entry's key is its kind, a colon, and the
// jti or subject, so a jti and a subject of the same spelling never meet.
const (
	revokeJTIPrefix = "jti:"
	revokeSubPrefix = "sub:"
)

// MaxRevocationField bounds the jti or subject of an entry: what no real
// token needs and every server may hold many of.
const MaxRevocationField = 256

// checkRevocable refuses a token whose sub or jti no revocation entry
// could name: a token accepted must be one that can be revoked.
func checkRevocable(sub, jti string) error {
	if len(sub) > MaxRevocationField || len(jti) > MaxRevocationField {
		return fmt.Errorf("%w: sub and jti may be at most %d bytes (a longer one could not be revoked)", ErrTokenClaims, MaxRevocationField)
	}
	return nil
}

// Key names the entry: entries with the same key merge (see Merge).
func (r Revocation) Key() string {
	if r.JTI != "" {
		return revokeJTIPrefix + r.JTI
	}
	return revokeSubPrefix + r.Subject
}

// Check says what is wrong with r, wrapping ErrBadRevocation.
func (r Revocation) Check() error {
	switch {
	case r.JTI == "" && r.Subject == "":
		return fmt.Errorf("%w: neither a jti nor a subject", ErrBadRevocation)
	case r.JTI != "" && r.Subject != "":
		return fmt.Errorf("%w: a jti and a subject: one or the other", ErrBadRevocation)
	case len(r.JTI) > MaxRevocationField || len(r.Subject) > MaxRevocationField:
		return fmt.Errorf("%w: a jti or subject longer than %d bytes", ErrBadRevocation, MaxRevocationField)
	case r.Until.IsZero():
		return fmt.Errorf("%w: no end (until)", ErrBadRevocation)
	case r.JTI == "" && r.Before.IsZero():
		return fmt.Errorf("%w: a subject revocation needs a time (before)", ErrBadRevocation)
	}
	return nil
}

// Covers reports whether r revokes the token that granted c.
func (r Revocation) Covers(c Claims) bool {
	if r.JTI != "" {
		return c.ID == r.JTI
	}
	return c.Subject == r.Subject && (c.IssuedAt.IsZero() || c.IssuedAt.Before(r.Before))
}

// Expired reports whether r may be forgotten at now.
func (r Revocation) Expired(now time.Time) bool { return !now.Before(r.Until) }

// Merge combines two entries of the same key: the later Before (it covers
// more) and the later Until (it lasts longer).
func (r Revocation) Merge(o Revocation) Revocation {
	if o.Before.After(r.Before) {
		r.Before = o.Before
	}
	if o.Until.After(r.Until) {
		r.Until = o.Until
	}
	return r
}

// StoredValue is the entry's value in the Redis hash, its key the field:
// Before and Until in Unix milliseconds, space-separated (the store's
// script merges two of them without a JSON decoder).
func (r Revocation) StoredValue() string {
	return strconv.FormatInt(msOrZero(r.Before), 10) + " " + strconv.FormatInt(r.Until.UnixMilli(), 10)
}

// ParseStoredRevocation reads an entry back from its hash field and value.
func ParseStoredRevocation(key, value string) (Revocation, error) {
	var r Revocation
	switch {
	case strings.HasPrefix(key, revokeJTIPrefix):
		r.JTI = key[len(revokeJTIPrefix):]
	case strings.HasPrefix(key, revokeSubPrefix):
		r.Subject = key[len(revokeSubPrefix):]
	default:
		return r, fmt.Errorf("%w: key %.40q is neither jti: nor sub:", ErrBadRevocation, key)
	}
	b, u, ok := strings.Cut(value, " ")
	before, err1 := strconv.ParseInt(b, 10, 64)
	until, err2 := strconv.ParseInt(u, 10, 64)
	if !ok || err1 != nil || err2 != nil || before < 0 || until <= 0 {
		return r, fmt.Errorf("%w: value %.40q is not two Unix ms times", ErrBadRevocation, value)
	}
	if before > 0 {
		r.Before = time.UnixMilli(before)
	}
	r.Until = time.UnixMilli(until)
	return r, r.Check()
}

// revocationWire is an announcement on the control channel.
type revocationWire struct {
	Key    string `json:"key"`
	Before int64  `json:"before"`
	Until  int64  `json:"until"`
}

// EncodeAnnouncement is r as pongctl announces it to every server.
func (r Revocation) EncodeAnnouncement() []byte {
	b, _ := json.Marshal(revocationWire{Key: r.Key(), Before: msOrZero(r.Before), Until: r.Until.UnixMilli()})
	return b
}

// maxAnnouncementBytes bounds an announcement: a key of at most
// MaxRevocationField bytes, escaped, and two numbers fit well within it.
const maxAnnouncementBytes = 2048

// DecodeAnnouncement reads an announcement; errors wrap ErrBadRevocation.
func DecodeAnnouncement(data []byte) (Revocation, error) {
	if len(data) > maxAnnouncementBytes {
		return Revocation{}, fmt.Errorf("%w: an announcement of %d bytes (at most %d)", ErrBadRevocation, len(data), maxAnnouncementBytes)
	}
	var w revocationWire
	if err := json.Unmarshal(data, &w); err != nil {
		return Revocation{}, fmt.Errorf("%w: not a JSON announcement", ErrBadRevocation)
	}
	return ParseStoredRevocation(w.Key, strconv.FormatInt(w.Before, 10)+" "+strconv.FormatInt(w.Until, 10))
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
