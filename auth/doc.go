// Package auth verifies the JWTs that clients present and issues them for
// pongctl. It owns the accepted algorithms, the required claims, the
// exchanges claim and where a token is read from in an HTTP request.
//
// A Verifier and a Signer are immutable once built and safe for concurrent
// use. Nothing in this package logs, and no error it returns contains a
// token.
package auth
