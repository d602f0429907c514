package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedactRedisURL returns what of a Redis URL an error or a log line may
// show: its scheme, host and port. Everything else (user name, password,
// database, options) is left out, and so is a host or port that does not
// look like one, so that a URL that does not parse, or a password typed
// where the host goes, shows no secret either. A value without a scheme is
// shown only when it is plainly an address (an IP address or localhost,
// with a port or not); otherwise it gives "".
func RedactRedisURL(raw string) string {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found || !isScheme(scheme) {
		addr := raw
		if i := strings.LastIndexByte(addr, '@'); i >= 0 {
			addr = addr[i+1:]
		}
		if i := strings.IndexAny(addr, "/?#"); i >= 0 {
			addr = addr[:i]
		}
		if isLiteralAddress(addr) {
			return addr
		}
		return ""
	}
	if u, err := url.Parse(raw); err == nil {
		// net/url knows where the authority ends, an @ in the query
		// notwithstanding.
		if isHostPort(u.Host) {
			return scheme + "://" + u.Host
		}
		return scheme + "://"
	}
	// It does not parse (a bad escape, say): a user name and password end
	// at the last @, whatever they hold.
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if !isHostPort(rest) {
		rest = ""
	}
	return scheme + "://" + rest
}

// isLiteralAddress reports whether s is an IP address or localhost, with
// or without a port: something that cannot be a password typed in the
// wrong place. An IPv6 address with a zone ("fe80::1%eth0") is not one: a
// zone may be any text at all.
func isLiteralAddress(s string) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
		host = h
	}
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Zone() == ""
}

// ParseRedisURL parses a Redis URL as redis.ParseURL does. Its error names
// the URL only as RedactRedisURL shows it, and says what is wrong in words
// of its own: go-redis's and net/url's errors quote the URL, or the part of
// it that failed, and that can be the password.
func ParseRedisURL(raw string) (*redis.Options, error) {
	opts, err := redis.ParseURL(raw)
	if err == nil {
		return opts, nil
	}
	shown := RedactRedisURL(raw)
	switch {
	case shown == raw:
		shown = fmt.Sprintf("%q", raw)
	case shown == "":
		shown = "the URL (not shown)"
	default:
		shown += " (the rest not shown)"
	}
	want := redisURLForms
	problem := redisURLProblem(raw, err)
	if !strings.Contains(raw, "://") && !strings.HasPrefix(raw, "unix:") {
		problem = "is not a URL"
		if RedactRedisURL(raw) == raw && raw != "" {
			want += ", e.g. redis://" + raw + "/0"
		}
	}
	return nil, fmt.Errorf("%s %s; want %s", shown, problem, want)
}

// redisURLForms are the forms of Redis URL that ParseRedisURL takes.
const redisURLForms = "redis://host:port/db (rediss:// for TLS, unix:///path/to/redis.sock for a socket)"

// redisURLProblem says what is wrong with a URL that redis.ParseURL
// refused with err, in words of its own: it quotes no part of the URL.
func redisURLProblem(raw string, err error) string {
	var escape url.EscapeError
	if errors.As(err, &escape) {
		return "has a bad %-escape (a % in a password is written %25)"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !isScheme(u.Scheme):
		return "is not a valid URL"
	case u.Scheme == "unix" && strings.TrimSpace(u.Path) == "":
		return "names no socket path"
	case u.Scheme != "unix" && u.Scheme != "redis" && u.Scheme != "rediss":
		return "has scheme " + u.Scheme
	}
	db := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
	if u.Scheme != "unix" && (len(db) > 1 || len(db) == 1 && strings.Trim(db[0], "0123456789") != "") {
		return "has a database that is not a number"
	}
	return "has a query option go-redis does not take, or a bad value for one"
}

// isScheme reports whether s is a URL scheme (RFC 3986 3.1).
func isScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isHostPort reports whether s is a host name or IP address, with a
// numeric port or none: the shape of what may be shown of an address.
func isHostPort(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || strings.Trim(s[1:end], "0123456789abcdefABCDEF:.") != "" {
			return false
		}
		host, port = "", s[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isLetter(c) && !isDigit(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
