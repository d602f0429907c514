package main

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// poller reads every client's socket through one epoll set that is
// itself watched by Go's netpoller. When the set is ready, one
// non-blocking epoll_wait returns every ready socket, and each is read
// once. Per delivery that is one read: no goroutine to wake per socket,
// no failed read before each park, and no thread sleeping in epoll_wait.
type poller struct {
	f       *fleet
	epfd    int
	file    *os.File // the epoll fd, registered with Go's netpoller
	raw     syscallRawConn
	mu      sync.Mutex
	clients map[int32]*benchClient
	done    chan struct{}
}

type syscallRawConn interface {
	Read(func(uintptr) bool) error
}

func newPoller(f *fleet) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	p := &poller{f: f, epfd: epfd, file: file, raw: rc, clients: map[int32]*benchClient{}, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// add hands c's socket to the poller. What the handshake reader had
// already buffered is parsed first, before the poller can see the
// socket, so that each client has one reader at a time.
func (p *poller) add(c *benchClient) error {
	sc, err := c.ws.conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	if err := sc.Control(func(v uintptr) { fd = int(v) }); err != nil {
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

// remove stops watching c; call it before closing c's socket.
func (p *poller) remove(c *benchClient) {
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(c.fd), nil)
	p.mu.Lock()
	delete(p.clients, c.fd)
	p.mu.Unlock()
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 1024)
	buf := make([]byte, 256<<10)
	for {
		var n int
		var werr error
		// Park in Go's netpoller until the epoll set has something, then
		// take everything that is ready without blocking.
		err := p.raw.Read(func(uintptr) bool {
			n, werr = syscall.EpollWait(p.epfd, events, 0)
			return n != 0 || (werr != nil && !errors.Is(werr, syscall.EINTR))
		})
		if err != nil || (werr != nil && !errors.Is(werr, syscall.EINTR)) {
			return // the epoll file was closed
		}
		now := time.Now().UnixNano()
		p.mu.Lock()
		for _, ev := range events[:n] {
			c := p.clients[ev.Fd]
			if c == nil {
				continue
			}
			m, err := syscall.Read(int(ev.Fd), buf)
			if m > 0 {
				p.consume(c, buf[:m], now)
			}
			if m == 0 || (err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)) {
				_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
				delete(p.clients, ev.Fd)
			}
		}
		p.mu.Unlock()
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
	for len(b) >= 2 {
		op := b[0] & 0x0F
		n, hdr := int(b[1]&0x7F), 2
		switch n {
		case 126:
			if len(b) < 4 {
				goto tail
			}
			n, hdr = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				goto tail
			}
			n, hdr = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if len(b) < hdr+n {
			break
		}
		payload := b[hdr : hdr+n]
		switch op {
		case 0x0, 0x1, 0x2:
			p.f.deliver(c, payload, now)
		case 0x9: // ping: answer, or the server drops us
			_ = c.ws.writeFrame(0xA, payload)
		case 0x8:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			if !c.ws.closing.Load() {
				c.closeCode.Store(int32(code))
				p.f.closed.Add(1)
			}
		}
		b = b[hdr+n:]
	}
tail:
	c.pending = append(c.pending[:0], b...)
}

func (p *poller) close() {
	p.file.Close() // wakes run with an error
	<-p.done
}
