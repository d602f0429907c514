package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/config"
)

func (e env) tokenIssue(args []string) error {
	fs := e.flagSet("token issue", "token issue --sub <subject> --exchanges <a,b|*> --ttl <duration> [flags]")
	sub := fs.String("sub", "", "token subject: who holds it (required)")
	exchanges := fs.String("exchanges", "", "comma-separated exchanges the holder may subscribe to, or * for all (empty: none)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	iss := fs.String("iss", e.getenv("PONGCAST_JWT_ISSUER"), "issuer claim (env PONGCAST_JWT_ISSUER)")
	aud := fs.String("aud", e.getenv("PONGCAST_JWT_AUDIENCE"), "audience claim (env PONGCAST_JWT_AUDIENCE)")
	alg := fs.String("alg", "HS256", "HMAC algorithm when signing with a secret: HS256, HS384 or HS512")
	secretFile := fs.String("jwt-secret-file", e.getenv("PONGCAST_JWT_SECRET_FILE"), "file with the HMAC secret (env PONGCAST_JWT_SECRET_FILE, or the secret in PONGCAST_JWT_SECRET)")
	keyFile := fs.String("jwt-private-key-file", e.getenv("PONGCAST_JWT_PRIVATE_KEY_FILE"), "PEM private key for RS256/ES256/EdDSA (env PONGCAST_JWT_PRIVATE_KEY_FILE)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, "--sub alice"); err != nil {
		return err
	}
	if *sub == "" {
		return usagef("token issue: --sub is required: who holds the token, for example --sub alice")
	}
	if *ttl <= 0 {
		return usagef("token issue: --ttl must be more than 0, for example --ttl 24h or --ttl 30m, got %s", *ttl)
	}
	names, err := exchangeList("token issue", *exchanges)
	if err != nil {
		return err
	}
	signer, err := e.signer(*secretFile, *keyFile, *alg)
	if err != nil {
		return err
	}
	token, err := signer.Issue(auth.TokenSpec{Subject: *sub, Exchanges: names, TTL: *ttl, Issuer: *iss, Audience: *aud})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, token)
	if len(names) == 0 {
		// Valid, and good for nothing: say so where a script does not read.
		fmt.Fprintln(e.stderr, "pongctl: warning: this token allows no exchanges: its holder can connect but subscribe to none;"+
			" allow some with --exchanges gateio,binance, or all with --exchanges '*'")
	}
	return nil
}

func (e env) signer(secretFile, keyFile, alg string) (*auth.Signer, error) {
	secret, err := config.SecretFromEnvOrFile(e.getenv("PONGCAST_JWT_SECRET"), secretFile)
	if err != nil {
		return nil, err
	}
	switch {
	case len(secret) > 0 && keyFile != "":
		return nil, usagef("give an HMAC secret (PONGCAST_JWT_SECRET or --jwt-secret-file) or a private key (--jwt-private-key-file), not both")
	case len(secret) > 0:
		switch alg {
		case "HS256", "HS384", "HS512":
		default:
			return nil, usagef("token issue: --alg must be HS256, HS384 or HS512 with an HMAC secret, got %q (with --jwt-private-key-file the key sets the algorithm)", alg)
		}
		return auth.NewHMACSigner(secret, alg)
	case keyFile != "":
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		return auth.NewKeySigner(pem)
	}
	return nil, usagef("no signing key: set PONGCAST_JWT_SECRET or --jwt-secret-file (HMAC), or --jwt-private-key-file")
}

func (e env) tokenVerify(args []string) error {
	fs := e.flagSet("token verify", "token verify [flags] <jwt>")
	iss := fs.String("iss", e.getenv("PONGCAST_JWT_ISSUER"), "required issuer (env PONGCAST_JWT_ISSUER)")
	aud := fs.String("aud", e.getenv("PONGCAST_JWT_AUDIENCE"), "required audience (env PONGCAST_JWT_AUDIENCE)")
	secretFile := fs.String("jwt-secret-file", e.getenv("PONGCAST_JWT_SECRET_FILE"), "file with the HMAC secret (env PONGCAST_JWT_SECRET_FILE, or the secret in PONGCAST_JWT_SECRET)")
	keyFile := fs.String("jwt-public-key-file", e.getenv("PONGCAST_JWT_PUBLIC_KEY_FILE"), "PEM public key (env PONGCAST_JWT_PUBLIC_KEY_FILE)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("token verify: want exactly one token argument, as in: pongctl token verify <jwt> (got %d)", fs.NArg())
	}
	token := strings.TrimSpace(fs.Arg(0))
	verifier, err := e.verifier(*secretFile, *keyFile, *iss, *aud)
	if err != nil {
		return err
	}
	// Print the claims as sent, valid or not: that is what an operator
	// debugging a refused client needs to see.
	if raw, ok := payloadOf(token); ok {
		fmt.Fprintf(e.stdout, "claims: %s\n", raw)
	}
	claims, err := verifier.Verify(token)
	if err != nil {
		fmt.Fprintln(e.stdout, "valid: false")
		return err
	}
	exp := claims.ExpiresAt.UTC().Format(time.RFC3339)
	when := "in " + roundDuration(time.Until(claims.ExpiresAt))
	if past := time.Since(claims.ExpiresAt); past > 0 {
		// Accepted for the clock skew the server allows, not for long: the
		// operator must know it is about to be refused, and when.
		cut := claims.ExpiresAt.Add(auth.DefaultLeeway)
		fmt.Fprintf(e.stdout, "valid (within leeway): %s past exp; the server accepts it until %s (exp + %s leeway, in %s), and closes connections made with it then\n",
			roundDuration(past), cut.UTC().Format(time.RFC3339), auth.DefaultLeeway, roundDuration(time.Until(cut)))
		when = roundDuration(past) + " ago"
	} else {
		fmt.Fprintln(e.stdout, "valid: true")
	}
	fmt.Fprintf(e.stdout, "sub: %s\nexchanges: %s\nexpires: %s (%s)\n",
		claims.Subject, strings.Join(claims.Exchanges, ","), exp, when)
	if claims.ID != "" {
		fmt.Fprintf(e.stdout, "jti: %s\n", claims.ID)
	}
	return nil
}

// verifier builds the Verifier of token verify and token revoke from the
// server's key settings.
func (e env) verifier(secretFile, keyFile, iss, aud string) (*auth.Verifier, error) {
	secret, err := config.SecretFromEnvOrFile(e.getenv("PONGCAST_JWT_SECRET"), secretFile)
	if err != nil {
		return nil, err
	}
	cfg := auth.VerifierConfig{HMACSecret: secret, Issuer: iss, Audience: aud}
	if keyFile != "" {
		if cfg.PublicKeyPEM, err = os.ReadFile(keyFile); err != nil {
			return nil, err
		}
	}
	if len(cfg.HMACSecret) == 0 && len(cfg.PublicKeyPEM) == 0 {
		return nil, usagef("no verification key: set PONGCAST_JWT_SECRET, --jwt-secret-file or --jwt-public-key-file")
	}
	return auth.NewVerifier(cfg)
}

// roundDuration rounds d to whole seconds for display, or to milliseconds
// under a second, where whole seconds would say 0s.
func roundDuration(d time.Duration) string {
	if d > -time.Second && d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// payloadOf decodes a JWT's claims segment without verifying it.
func payloadOf(token string) (json.RawMessage, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !json.Valid(b) {
		return nil, false
	}
	return b, true
}
