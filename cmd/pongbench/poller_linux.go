package main

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pongcast/pongcast/protocol/wsframe"
)

// poller reads every client's socket through one epoll set, waited for
// by one OS thread of its own. Per delivery that is one read and no
// goroutine to wake. The sockets and the set stay out of Go's netpoller,
// and the thread waits and reads without telling the scheduler, because
// on a small VM the scheduler's own wake-ups (the netpoller thread,
// sysmon handing off the P) cost more than the reads: W3 went from 21 to
// 11 µs of pongbench CPU per delivery. While the thread is reading, no
// one waits on the set, so the server's writes during a burst wake no one.
type poller struct {
	f       *fleet
	epfd    int
	wakeR   int // the pipe close writes to, to stop run
	wakeW   int
	mu      sync.Mutex
	clients map[int32]*benchClient
	done    chan struct{}
	wakeups atomic.Int64 // batches read, for deliveries per wake-up
}

// wakeFd marks the close pipe's events in the set.
const wakeFd = -1

func newPoller(f *fleet) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	p := &poller{f: f, epfd: epfd, wakeR: fds[0], wakeW: fds[1], clients: map[int32]*benchClient{}, done: make(chan struct{})}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeFd}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wakeR, &ev); err != nil {
		p.closeFds()
		return nil, err
	}
	go p.run()
	return p, nil
}

func (p *poller) closeFds() {
	syscall.Close(p.epfd)
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
}

// add hands c's socket to the poller. What the handshake reader had
// already buffered is parsed first, before the poller can see the
// socket, so that each client has one reader at a time.
func (p *poller) add(c *benchClient) error {
	fd, err := detach(c.ws)
	if err != nil {
		return err
	}
	c.fd = int32(fd)
	if n := c.ws.br.Buffered(); n > 0 {
		b, _ := c.ws.br.Peek(n)
		p.consume(c, b, time.Now().UnixNano())
	}
	p.mu.Lock()
	p.clients[c.fd] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: c.fd}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.clients, c.fd)
		p.mu.Unlock()
		return err
	}
	return nil
}

// detach takes ws's socket out of Go's netpoller, where every frame the
// server sends would also wake the runtime's poller thread, and leaves it
// only in the poller's set. It returns the socket's new descriptor.
func detach(ws *wsClient) (int, error) {
	tcp, ok := ws.conn.(*net.TCPConn)
	if !ok {
		return 0, errors.New("pongbench: not a TCP connection")
	}
	sc, err := tcp.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	var derr error
	cerr := sc.Control(func(v uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, v, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			derr = errno
			return
		}
		fd = int(r)
	})
	if err := errors.Join(cerr, derr); err != nil {
		return 0, err
	}
	// Closing the original unregisters it from the netpoller; the
	// duplicate keeps the socket open (and non-blocking).
	tcp.Close()
	ws.conn = &detachedConn{Conn: tcp, fd: fd}
	return fd, nil
}

// detachedConn is a client socket outside Go's netpoller. Only small
// control frames are written to it, into a socket that has room.
type detachedConn struct {
	net.Conn // the closed original, for its addresses
	fd       int
	once     sync.Once
}

func (d *detachedConn) Write(p []byte) (int, error) {
	n, err := syscall.Write(d.fd, p)
	if err == nil && n < len(p) {
		err = syscall.EAGAIN
	}
	return max(n, 0), err
}

func (d *detachedConn) Close() error {
	d.once.Do(func() { syscall.Close(d.fd) })
	return nil
}

func (d *detachedConn) SetWriteDeadline(time.Time) error { return nil }

// remove stops watching c; call it before closing c's socket.
func (p *poller) remove(c *benchClient) {
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(c.fd), nil)
	p.mu.Lock()
	delete(p.clients, c.fd)
	p.mu.Unlock()
}

func (p *poller) run() {
	runtime.LockOSThread()
	defer close(p.done)
	events := make([]syscall.EpollEvent, 1024)
	buf := make([]byte, 256<<10)
	for {
		n, err := rawEpollWait(p.epfd, events, 10)
		if errors.Is(err, syscall.EINTR) || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == wakeFd {
				return // close
			}
		}
		p.readReady(events[:n], buf)
	}
}

// rawEpollWait is epoll_wait (epoll_pwait with no signal mask, which
// every Linux architecture has) without telling the Go scheduler: the
// thread keeps its P, so sysmon never hands the P off and keeps waking
// itself every 20 µs to do so. The timeout bounds how long a stop-the-world
// waits for this thread (a preemption signal also ends the wait early).
func rawEpollWait(epfd int, events []syscall.EpollEvent, msec int) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawRead reads fd, which never blocks, without the scheduler, for the
// same reason as rawEpollWait.
func rawRead(fd int, buf []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// readReady reads each ready socket once.
func (p *poller) readReady(events []syscall.EpollEvent, buf []byte) {
	p.wakeups.Add(1)
	now := time.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range events {
		c := p.clients[ev.Fd]
		if c == nil {
			continue
		}
		m, err := rawRead(int(ev.Fd), buf)
		if m > 0 {
			p.consume(c, buf[:m], now)
		}
		if m == 0 || (err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)) {
			_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
			delete(p.clients, ev.Fd)
		}
	}
}

// consume parses data read for c, after any partial frame left from
// before, and keeps an incomplete tail for next time.
func (p *poller) consume(c *benchClient, data []byte, now int64) {
	b := data
	if len(c.pending) > 0 {
		c.pending = append(c.pending, data...)
		b = c.pending
	}
	for len(b) > 0 {
		h, hdr, err := wsframe.Parse(b)
		if err != nil {
			if !errors.Is(err, wsframe.ErrShort) {
				b = nil // not WebSocket: drop it; what it held counts as lost
			}
			break // the rest of the header comes later
		}
		n := int(h.Length)
		if len(b) < hdr+n {
			break
		}
		payload := b[hdr : hdr+n]
		switch h.Opcode {
		case wsframe.OpContinuation, wsframe.OpText, wsframe.OpBinary:
			p.f.deliver(c, payload, now)
		case wsframe.OpPing: // answer, or the server drops us
			_ = c.ws.writeFrame(wsframe.OpPong, payload)
		case wsframe.OpClose:
			code, _, err := wsframe.ParseClosePayload(payload)
			if err != nil {
				code = wsframe.CloseProtocolError
			}
			if !c.ws.closing.Load() {
				c.closeCode.Store(int32(code))
				p.f.closed.Add(1)
			}
		}
		b = b[hdr+n:]
	}
	c.pending = append(c.pending[:0], b...)
}

func (p *poller) close() {
	_, _ = syscall.Write(p.wakeW, []byte{1})
	<-p.done
	p.closeFds()
}
