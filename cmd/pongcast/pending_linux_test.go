//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
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

// runWithLowFileLimit is the child: pongcast with its file limit lowered
// to childFileLimit, its arguments from PONGCAST_TEST_ARGS (JSON), its
// listen address printed on stdout. SIGTERM stops it.
func runWithLowFileLimit() int {
	lim := syscall.Rlimit{Cur: childFileLimit, Max: childFileLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 1
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("PONGCAST_TEST_ARGS")), &args); err != nil {
		fmt.Fprintln(os.Stderr, "PONGCAST_TEST_ARGS:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr, func(addr string) { fmt.Println("listening", addr) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// More idle TCP connections than the server may open files, all from one
// address: the server keeps a share of them (they used to take every file,
// so /healthz and good handshakes timed out) and closes the rest at
// accept, counted; a client from another address is served at once.
func TestIdleConnectionFloodLeavesRoomForClients(t *testing.T) {
	redisURL := hubtest.RedisURL(t)
	args, _ := json.Marshal([]string{"--addr", "127.0.0.1:0", "--redis-url", redisURL, "--channel", hubtest.Channel(t), "--handshake-timeout", "1m"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PONGCAST_TEST_CHILD=lowfiles", "PONGCAST_TEST_ARGS="+string(args), "PONGCAST_JWT_SECRET="+hubtest.Secret)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("server did not exit on SIGTERM")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	lines := bufio.NewScanner(stdout)
	addr := ""
	for addr == "" && lines.Scan() {
		addr, _ = strings.CutPrefix(lines.Text(), "listening ")
	}
	if addr == "" {
		t.Fatalf("no listen address; log:\n%s", logs.String())
	}
	go func() {
		for lines.Scan() { // keep the pipe drained
		}
	}()

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
