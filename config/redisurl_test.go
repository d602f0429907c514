package config

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRedisURL: whatever the URL, its error shows of it only what
// RedactRedisURL shows (or the whole value, when that is all there is, and
// the scheme), in a fixed frame of words.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://user:S3cret%zzPw@127.0.0.1:6410/0", "127.0.0.1:6400", "user:pw@127.0.0.1:6400", "rediss://u:p@h:1/x",
		"unix://", "unix:///tmp/r.sock?x=1", "http://u:p@x", "redis://[::1]:6379/0?dial_timeout=soon", "redis://u:p/w@h:1/0", "",
		"::%0", "[fe80::1%S3cret]:6379", // an IPv6 zone is free text: never shown

	} {
		f.Add(s)
	}
	shape := regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://)?[A-Za-z0-9._\-\[\]:]*$`)
	problems := []string{
		"has a bad %-escape (a % in a password is written %25)", "is not a valid URL", "is not a URL", "names no socket path",
		"has a database that is not a number", "has a query option go-redis does not take, or a bad value for one",
	}
	f.Fuzz(func(t *testing.T, raw string) {
		shown := RedactRedisURL(raw)
		if !shape.MatchString(shown) {
			t.Fatalf("RedactRedisURL(%q) = %q: not a scheme, host and port", raw, shown)
		}
		_, err := ParseRedisURL(raw)
		if err == nil {
			return
		}
		head, tail, ok := strings.Cut(err.Error(), "; want "+redisURLForms)
		if !ok || tail != "" && (shown != raw || tail != ", e.g. redis://"+raw+"/0") {
			t.Fatalf("%q: %v", raw, err)
		}
		for _, display := range []string{strconv.Quote(raw), "the URL (not shown)", shown + " (the rest not shown)"} {
			problem, ok := strings.CutPrefix(head, display+" ")
			if !ok {
				continue
			}
			for _, p := range problems {
				if problem == p {
					return
				}
			}
			if scheme, ok := strings.CutPrefix(problem, "has scheme "); ok && isScheme(scheme) {
				return
			}
		}
		t.Fatalf("%q: %v", raw, err)
	})
}
