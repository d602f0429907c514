//go:build linux

package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// childFileLimit is the file limit of the server under flood.
const childFileLimit = 1024

func init() {
	childModes["lowfiles"] = runWithLowFileLimit
}

// runWithLowFileLimit is the child: pongcast (as runChildServer runs it)
// with its file limit lowered to childFileLimit.
func runWithLowFileLimit() int {
	lim := syscall.Rlimit{Cur: childFileLimit, Max: childFileLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 1
	}
	return runChildServer()
}

// More idle TCP connections than the server may open files, all from one
// address: the server keeps a share of them (they used to take every file,
// so /healthz and good handshakes timed out) and closes the rest at
// accept, counted; a client from another address is served at once.
func TestIdleConnectionFloodLeavesRoomForClients(t *testing.T) {
	redisURL := hubtest.RedisURL(t)
	srv := startChild(t, "lowfiles", "--addr", "127.0.0.1:0", "--redis-url", redisURL, "--channel", hubtest.Channel(t), "--handshake-timeout", "1m")
	addr, logs := srv.addr, srv.logs

	// The flood: from 127.0.0.2, connections that never send a byte.
	const flood = childFileLimit + 100
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	for i := range flood {
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}

	// Wait until the server has refused what it will not hold: every
	// flood connection is either held or closed and counted.
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}
	held := 0
	for {
		v, err := fetchSample(client, base, `pongcast_handshake_refusals_total{reason="pending_ip"}`)
		if err != nil {
			t.Fatalf("/metrics during the flood: %v", err)
		}
		refused, _ := strconv.Atoi(v)
		if held = flood - refused; held <= 32 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held != 32 {
		t.Fatalf("%d flood connections held, want the per-address cap of 32", held)
	}

	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("/healthz during the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	c := hubtest.MustDial(t, "ws://"+addr+"/ws?exchanges=gateio", hubtest.Token(t, "good", time.Hour, "*"))
	c.ReadType("subscribed")
	if !strings.Contains(logs.String(), "too many not yet upgraded") {
		t.Fatalf("no warning about the refused connections; log:\n%s", logs.String())
	}
}
