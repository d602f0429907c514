package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MinHMACSecretBytes is the shortest HMAC secret accepted: shorter ones can
// be brute-forced from a single captured token.
const MinHMACSecretBytes = 32

// HMAC algorithms, accepted together when a secret is configured.
var hmacAlgorithms = []string{"HS256", "HS384", "HS512"}

func checkHMACSecret(secret []byte) error {
	if len(secret) < MinHMACSecretBytes {
		return fmt.Errorf("auth: HMAC secret is %d bytes, want at least %d (try: openssl rand -hex 32)", len(secret), MinHMACSecretBytes)
	}
	return nil
}

// parsePublicKey reads a PEM public key or certificate and returns the key
// with the algorithms its family accepts.
func parsePublicKey(pemBytes []byte) (any, []string, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, nil, errors.New("auth: public key file holds no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("auth: PEM block %q is not a public key (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("auth: parse public key: %w", err)
	}
	algs, err := algorithmsFor(key)
	if err != nil {
		return nil, nil, err
	}
	return key, algs, nil
}

// parsePrivateKey reads a PEM private key for signing and returns it with
// the algorithm it signs with.
func parsePrivateKey(pemBytes []byte) (any, string, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, "", errors.New("auth: private key file holds no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("auth: PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("auth: parse private key: %w", err)
	}
	var pub any
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		return nil, "", fmt.Errorf("auth: unsupported private key type %T", key)
	}
	algs, err := algorithmsFor(pub)
	if err != nil {
		return nil, "", err
	}
	return key, algs[0], nil
}

// algorithmsFor returns the JWT algorithms a public key verifies, the
// preferred one first. Only one family is ever returned, which is what
// rules out HS/RS confusion.
func algorithmsFor(key any) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("auth: RSA key is %d bits, want at least 2048", k.N.BitLen())
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("auth: unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("auth: unsupported public key type %T", key)
}
