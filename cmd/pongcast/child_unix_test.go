//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

func init() {
	childModes["server"] = runChildServer
}

// runChildServer is a child: pongcast with its arguments from
// PONGCAST_TEST_ARGS (JSON), its listen address printed on stdout.
// SIGTERM stops it; SIGKILL is what a test kills it with to see it die.
func runChildServer() int {
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

// child is a pongcast running as a child process of the test binary.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string // host:port
	logs   *syncBuffer
	exited chan error
	killed bool
}

// startChild runs the test binary again in child mode (see childModes)
// with args, and waits for its listen address. At cleanup it is stopped
// with SIGTERM, and must exit cleanly, unless the test killed it.
func startChild(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	encoded, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PONGCAST_TEST_CHILD="+mode, "PONGCAST_TEST_ARGS="+string(encoded), "PONGCAST_JWT_SECRET="+hubtest.Secret)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, logs: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(c.stop)
	lines := bufio.NewScanner(stdout)
	for c.addr == "" && lines.Scan() {
		c.addr, _ = strings.CutPrefix(lines.Text(), "listening ")
	}
	if c.addr == "" {
		t.Fatalf("no listen address; log:\n%s", c.logs.String())
	}
	go func() {
		for lines.Scan() { // keep the pipe drained
		}
	}()
	return c
}

// kill kills the child with SIGKILL, as a crash would, and waits for it.
func (c *child) kill() {
	c.killed = true
	_ = c.cmd.Process.Kill()
	<-c.exited
}

func (c *child) stop() {
	if c.killed {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		if err != nil {
			c.t.Errorf("server exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		c.t.Error("server did not exit on SIGTERM")
	}
	if c.t.Failed() {
		c.t.Logf("server %s log:\n%s", c.addr, c.logs.String())
	}
}
