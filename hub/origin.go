package hub

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// originPolicy decides which browsers may connect, by their Origin header.
// A request without one is not from a browser page and is not its
// concern. A page from the server's own host is always allowed; others
// must match a pattern.
type originPolicy struct {
	any      bool
	patterns []originPattern
}

// originPattern is one allowed origin: a scheme (empty: https or http)
// and a host[:port] pattern in path.Match syntax, lower case.
type originPattern struct {
	scheme, host string
}

// DevOrigins are the origins dev mode allows: pages served from this
// machine's loopback names, on any port, over http or https.
var DevOrigins = []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", `\[::1\]`, `\[::1\]:*`}

// newOriginPolicy parses patterns: "*" (any origin), "host" or "*.host"
// (https and http only), "host:port", or "scheme://host" for exactly that
// scheme.
func newOriginPolicy(patterns []string) (originPolicy, error) {
	var p originPolicy
	for _, raw := range patterns {
		raw = strings.ToLower(strings.TrimSpace(raw))
		if raw == "*" {
			p.any = true
			continue
		}
		pat := originPattern{host: raw}
		if scheme, host, ok := strings.Cut(raw, "://"); ok {
			pat = originPattern{scheme: scheme, host: host}
		}
		if pat.host == "" || strings.Contains(pat.host, "/") {
			return originPolicy{}, fmt.Errorf("origin pattern %q: want host, *.host, host:port or scheme://host", raw)
		}
		if _, err := path.Match(pat.host, ""); err != nil {
			return originPolicy{}, fmt.Errorf("origin pattern %q: %v", raw, err)
		}
		p.patterns = append(p.patterns, pat)
	}
	return p, nil
}

// check returns "" when r may connect, or the Origin it refuses.
func (p originPolicy) check(r *http.Request) (refused string) {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return origin // "null", or not an origin at all
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if (scheme == "https" || scheme == "http") && host == strings.ToLower(r.Host) {
		return "" // same origin
	}
	for _, pat := range p.patterns {
		if !pat.allowsScheme(scheme) {
			continue
		}
		if ok, _ := path.Match(pat.host, host); ok {
			return ""
		}
	}
	return origin
}

func (pat originPattern) allowsScheme(scheme string) bool {
	if pat.scheme == "" {
		return scheme == "https" || scheme == "http"
	}
	return scheme == pat.scheme
}
