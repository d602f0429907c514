// Package config owns pongcast's settings: their flags, their PONGCAST_*
// environment variables (a flag wins over its variable), their defaults and
// one validation pass that reports every bad value at once.
//
// It imports no other pongcast package; cmd/pongcast turns a Config into the
// options of the packages that do the work. Load is safe to call
// concurrently; a Config is a plain value.
package config
