package protocol

// DefaultMaxMessageBytes caps every message in both directions: client
// frames, server frames and the pongs read from Redis.
const DefaultMaxMessageBytes = 16384

// MaxIDBytes bounds the optional request id a client may attach to a
// message; the id is echoed back, so it must stay small.
const MaxIDBytes = 128

// MaxExchangeNameLen is the longest valid exchange name.
const MaxExchangeNameLen = 64
