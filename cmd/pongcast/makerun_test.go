//go:build unix

package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// buildTimeout bounds the wait for the banner: make run builds first, and
// a cold build on a loaded CI machine takes minutes.
const buildTimeout = 5 * time.Minute

// TestMakeRun runs make run in the repository as a new user does and
// does what its banner says, verbatim, in a POSIX shell from the
// repository root: the throwaway secret signs a token the server takes,
// the wscat URL and the pongctl watch command connect, redis-cli (when
// installed) and pongctl publish each deliver a pong to both, and pages on
// localhost and 127.0.0.1 may connect. The embedded Redis must take a free
// port, since 6379 is taken (by the real Redis here; by the test where
// nothing listens there). Then SIGINT to make's process group, as a
// terminal's Ctrl-C: pongcast stops cleanly, and make prints no error
// line.
func TestMakeRun(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("make is not installed, and CI must run this test")
		}
		t.Skip("make is not installed")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:6379"); err == nil {
		c.Close()
	} else if ln, err := net.Listen("tcp", "127.0.0.1:6379"); err == nil {
		t.Cleanup(func() { ln.Close() })
	}
	env := newUserEnv()

	var mk *process
	t.Cleanup(func() { // after make is stopped and waited for
		if t.Failed() && mk != nil {
			t.Logf("make's stderr:\n%s", mk.stderr)
		}
	})
	mk = startProcess(t, root, append(env, "PONGCAST_ADDR=127.0.0.1:0"), "make", "run")
	_, building := mk.stdout.wait(t, 0, buildTimeout, "make's first line", anyLine)
	if want := "make run: building bin/pongcast and bin/pongctl (the first build takes a minute or two)..."; building != want {
		t.Errorf("first line %q, want %q", building, want)
	}
	// The banner ends with its publish commands and a blank line.
	pub, _ := mk.stdout.wait(t, 0, buildTimeout, "a banner", prefix("Publish a pong"))
	end, _ := mk.stdout.wait(t, pub, hubtest.ReadTimeout, "the blank line that ends the banner", blank)
	banner := mk.stdout.lines(0, end)
	b := parseBanner(t, banner)
	t.Logf("banner:\n%s", strings.Join(banner, "\n"))

	if b.redisPort == "" || b.redisPort == "6379" {
		t.Errorf("embedded Redis on port %q, want a free port other than 6379 (taken)", b.redisPort)
	}
	if !strings.Contains(strings.Join(banner, "\n"), "JWT secret: random, made for this run") {
		t.Error("banner does not say the secret is a random one")
	}

	// The wscat URL, dialled as wscat would: the token in the query.
	wscat, _, err := hubtest.Dial(t, b.wscatURL, "", nil)
	if err != nil {
		t.Fatalf("dial the wscat URL: %v", err)
	}
	if got := wscat.ReadType("subscribed").Exchanges; len(got) != 1 || got[0] != "gateio" {
		t.Fatalf("wscat URL subscribed %v, want gateio", got)
	}
	watch := startProcess(t, root, env, "sh", "-c", b.watch)
	watch.stdout.wait(t, 0, hubtest.ReadTimeout, "pongctl watch's subscribed", contains(`"type":"subscribed"`))

	// A pong published before the server's subscription is live is lost.
	mk.stderr.wait(t, 0, hubtest.ReadTimeout, "the server's Redis subscription", contains(`msg="redis subscription live"`))
	seen := watch.stdout.len()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Logf("redis-cli is not installed: not running %s", b.redisCLI)
	} else {
		out := runShell(t, root, env, b.redisCLI)
		if out != "1\n" && out != "(integer) 1\n" {
			t.Errorf("redis-cli printed %q, want 1 subscriber", out)
		}
		ts := regexp.MustCompile(`"timestamp":\d+`).FindString(b.redisCLI)
		if ts == "" {
			t.Fatalf("redis-cli command without a timestamp: %s", b.redisCLI)
		}
		expectPong(t, wscat, watch, &seen, "redis-cli", ts)
	}
	if out := runShell(t, root, env, b.publish); !strings.HasSuffix(out, "(1 subscriber(s) of the channel)\n") {
		t.Errorf("pongctl publish printed %q, want 1 subscriber", out)
	}
	expectPong(t, wscat, watch, &seen, "pongctl publish", `"latency":45`)

	// The secret block, pasted as printed, signs a token the server takes.
	issued := strings.TrimSpace(runShell(t, root, env, b.secret+"\n"+b.issue))
	c := hubtest.MustDial(t, b.ws+"/?exchanges=gateio", issued)
	c.ReadType("subscribed")

	port := b.ws[strings.LastIndexByte(b.ws, ':')+1:]
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"http://localhost:" + port, http.StatusSwitchingProtocols},
		{"http://127.0.0.1:" + port, http.StatusSwitchingProtocols},
		{"http://localhost:5173", http.StatusSwitchingProtocols}, // a dev frontend's own server
		{"http://127.0.0.1:5173", http.StatusSwitchingProtocols},
		{"https://app.example.com", http.StatusForbidden},
	} {
		c, resp, err := hubtest.Dial(t, b.wscatURL, "", http.Header{"Origin": {tc.origin}})
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		if got != tc.want {
			t.Errorf("Origin %s: HTTP %d (%v), want %d", tc.origin, got, err, tc.want)
		}
		if c != nil {
			c.ReadType("subscribed")
			c.Conn.CloseNow()
		}
	}

	if err := syscall.Kill(-mk.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	mk.waitExit(t, 15*time.Second)
	errOut := mk.stderr.String()
	// make reports a child that fails or dies of a signal with a "***"
	// line ("Error 1" for go run's exit 1 on SIGINT): none, and pongcast's
	// last log line, mean pongcast returned 0.
	if strings.Contains(errOut, "***") {
		t.Errorf("make printed an error line")
	}
	if !strings.Contains(errOut, `level=INFO msg=stopped`) {
		t.Errorf("pongcast did not log that it stopped")
	}
	// make then dies of the SIGINT it got too, as it must on Ctrl-C (a
	// shell shows 130 and prints nothing); where SIGINT was ignored when
	// make started, make ignores it and exits with pongcast's 0.
	ws := mk.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !(ws.Exited() && ws.ExitStatus() == 0) && !(ws.Signaled() && ws.Signal() == syscall.SIGINT) {
		t.Errorf("make ended with %v, want exit 0 or its own SIGINT", mk.cmd.ProcessState)
	}
}

// expectPong waits for the next pong on the wscat client and on pongctl
// watch, each holding marker.
func expectPong(t *testing.T, wscat *hubtest.Client, watch *process, seen *int, from, marker string) {
	t.Helper()
	if m := wscat.ReadType("exchange:pong"); m.Exchange != "gateio" || !strings.Contains(string(m.Raw), marker) {
		t.Errorf("wscat URL client got %s after %s, want the gateio pong with %s", m.Raw, from, marker)
	}
	i, line := watch.stdout.wait(t, *seen, hubtest.ReadTimeout, "a pong on pongctl watch after "+from, contains(`"type":"exchange:pong"`))
	if !strings.Contains(line, `"exchange":"gateio"`) || !strings.Contains(line, marker) {
		t.Errorf("pongctl watch printed %s after %s, want the gateio pong with %s", line, from, marker)
	}
	*seen = i + 1
}

// devBanner is what TestMakeRun takes from the banner: each command as
// printed, and the addresses.
type devBanner struct {
	ws, redisPort                                     string
	secret, issue, wscatURL, watch, redisCLI, publish string
}

// parseBanner picks the commands out of the banner, and fails the test on
// a command line it does not know: every command printed is one run.
func parseBanner(t *testing.T, banner []string) devBanner {
	t.Helper()
	var b devBanner
	head := regexp.MustCompile(`^pongcast dev mode: listening on (ws://127\.0\.0\.1:\d+), Redis at redis://127\.0\.0\.1:(\d+) \(embedded\), channel "exchange:pong"$`)
	token := ""
	for i, l := range banner {
		if m := head.FindStringSubmatch(l); m != nil {
			b.ws, b.redisPort = m[1], m[2]
			continue
		}
		cmd, ok := strings.CutPrefix(l, "  ")
		if !ok {
			continue
		}
		switch {
		case i > 0 && strings.HasPrefix(banner[i-1], "Token ("):
			token = cmd
		case strings.HasPrefix(cmd, "export PONGCAST_JWT_SECRET="):
			b.secret = cmd
		case strings.HasPrefix(cmd, "bin/pongctl token issue "):
			b.issue = cmd
		case strings.HasPrefix(cmd, "wscat -c '") && strings.HasSuffix(cmd, "'"):
			b.wscatURL = cmd[len("wscat -c '") : len(cmd)-1]
		case strings.HasPrefix(cmd, "PONGCAST_TOKEN="):
			b.watch = cmd
		case strings.HasPrefix(cmd, "redis-cli "):
			b.redisCLI = cmd
		case strings.HasPrefix(cmd, "bin/pongctl publish "):
			b.publish = cmd
		default:
			t.Errorf("a banner line the test does not run: %q", l)
		}
	}
	for name, v := range map[string]string{
		"listen and Redis line": b.ws, "token": token, "secret": b.secret, "token issue": b.issue,
		"wscat": b.wscatURL, "pongctl watch": b.watch, "redis-cli": b.redisCLI, "pongctl publish": b.publish,
	} {
		if v == "" {
			t.Fatalf("banner lacks the %s", name)
		}
	}
	if want := "PONGCAST_TOKEN=" + token + " bin/pongctl watch --url " + b.ws + " --exchanges gateio"; b.watch != want {
		t.Errorf("watch command %q, want %q", b.watch, want)
	}
	if !strings.Contains(b.wscatURL, "access_token="+token) {
		t.Errorf("wscat URL %q lacks the token", b.wscatURL)
	}
	return b
}

// newUserEnv is this process's environment without what a new user's
// shell would not have: PONGCAST_* settings, and the variables of a make
// that runs the tests (with them, the inner make would take the outer
// one's jobserver and print make[1]: prefixes).
func newUserEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PONGCAST_") || strings.HasPrefix(k, "MAKE") || k == "MFLAGS" || k == "GNUMAKEFLAGS" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runShell runs line in a POSIX shell in dir and returns its stdout,
// failing the test if it fails.
func runShell(t *testing.T, dir string, env []string, line string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", line, err, out, &stderr)
	}
	return string(out)
}

// process is a command started in a process group of its own, with its
// output kept line by line. At cleanup its group is killed if it is still
// running, and it is waited for.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *lineLog
	exited         chan struct{}
}

func startProcess(t *testing.T, dir string, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), stdout: newLineLog(), stderr: newLineLog(), exited: make(chan struct{})}
	p.cmd.Dir, p.cmd.Env = dir, env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.stdout.close()
		p.stderr.close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
	return p
}

// waitExit waits for the process to exit, failing the test if it does not
// within timeout.
func (p *process) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after SIGINT\nstderr:\n%s", p.cmd, timeout, p.stderr)
	}
}

// lineLog is an io.Writer that keeps what a process writes as lines, and
// lets a test wait for one.
type lineLog struct {
	mu      sync.Mutex
	partial string
	all     []string
	closed  bool
	grew    chan struct{} // closed, and replaced, when a line comes or the log closes
}

func newLineLog() *lineLog { return &lineLog{grew: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.partial + string(p)
	lines := strings.Split(text, "\n")
	l.partial = lines[len(lines)-1]
	if len(lines) > 1 {
		l.all = append(l.all, lines[:len(lines)-1]...)
		close(l.grew)
		l.grew = make(chan struct{})
	}
	return len(p), nil
}

func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.partial != "" {
		l.all = append(l.all, l.partial)
		l.partial = ""
	}
	l.closed = true
	close(l.grew)
	l.grew = make(chan struct{})
}

func (l *lineLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// lines returns lines [from, to).
func (l *lineLog) lines(from, to int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all[from:to]...)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n") + l.partial
}

// wait returns the first line at or after index from that match accepts,
// and its index. It fails the test if none comes within timeout or the
// process ends first.
func (l *lineLog) wait(t *testing.T, from int, timeout time.Duration, what string, match func(string) bool) (int, string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := from; ; {
		l.mu.Lock()
		for ; i < len(l.all); i++ {
			if match(l.all[i]) {
				line := l.all[i]
				l.mu.Unlock()
				return i, line
			}
		}
		closed, grew := l.closed, l.grew
		l.mu.Unlock()
		if closed {
			t.Fatalf("output ended first: %s; output:\n%s", what, l)
		}
		select {
		case <-grew:
		case <-deadline.C:
			t.Fatalf("not within %s: %s; output:\n%s", timeout, what, l)
		}
	}
}

func anyLine(string) bool { return true }

func blank(s string) bool { return s == "" }

func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

func contains(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}
