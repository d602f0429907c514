package main

import (
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pongcast/pongcast/protocol/wsframe"
)

// broadcaster holds every open socket, split into one shard per write
// worker, and writes each frame to all of them.
type broadcaster struct {
	shards []*shard
	next   atomic.Uint64 // round-robin shard for the next connection
	wg     sync.WaitGroup
}

// shard is one worker's sockets and its queue of frames.
type shard struct {
	mu     sync.RWMutex
	conns  map[net.Conn]struct{}
	frames chan []byte
}

func newBroadcaster(workers int) *broadcaster {
	b := &broadcaster{}
	for range workers {
		s := &shard{conns: map[net.Conn]struct{}{}, frames: make(chan []byte, 1024)}
		b.shards = append(b.shards, s)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			s.run()
		}()
	}
	return b
}

// broadcast wraps a pong in the envelope, frames it once and hands the
// same frame to every worker.
func (b *broadcaster) broadcast(pong []byte) {
	env := make([]byte, 0, len(pong)+64)
	env = append(env, `{"type":"exchange:pong","source":"exchange","data":`...)
	env = append(env, pong...)
	env = append(env, '}')
	frame := textFrame(env)
	for _, s := range b.shards {
		s.frames <- frame
	}
}

// close stops the workers and closes every socket.
func (b *broadcaster) close() {
	for _, s := range b.shards {
		close(s.frames)
	}
	b.wg.Wait()
	for _, s := range b.shards {
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}
}

func (s *shard) run() {
	for frame := range s.frames {
		s.mu.RLock()
		for c := range s.conns {
			if _, err := c.Write(frame); err != nil {
				c.Close() // its reader removes it
			}
		}
		s.mu.RUnlock()
	}
}

// ServeHTTP upgrades any path to WebSocket, with no checks beyond what the
// handshake needs.
func (b *broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "pongfloor: WebSocket upgrade required", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "pongfloor: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// Answer and register under the shard's lock, so the client is counted
	// by the time its handshake completes and no frame can precede the 101.
	s := b.shards[b.next.Add(1)%uint64(len(b.shards))]
	s.mu.Lock()
	_, err = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n")
	if err == nil {
		err = rw.Flush()
	}
	if err == nil {
		s.conns[conn] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		conn.Close()
		return
	}
	go func() {
		// Clients only ever send pongs and a close; read until the socket
		// ends, then forget it.
		buf := make([]byte, 256)
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
}

// acceptKey is the Sec-WebSocket-Accept answer to key (RFC 6455, 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// textFrame is payload as one unmasked, final text frame.
func textFrame(payload []byte) []byte {
	f := make([]byte, 0, wsframe.HeaderLen(len(payload))+len(payload))
	return wsframe.AppendFrame(f, wsframe.OpText, payload, nil)
}
