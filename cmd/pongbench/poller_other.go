//go:build !linux

package main

import (
	"errors"
	"sync/atomic"
)

// poller reads through epoll, which only Linux has; elsewhere pongbench
// builds, so that `go vet ./...` and `go test ./...` work on any laptop,
// but refuses to run.
type poller struct {
	wakeups atomic.Int64
}

var errNotLinux = errors.New("pongbench runs on Linux only: it reads its clients through epoll")

func newPoller(*fleet) (*poller, error)  { return nil, errNotLinux }
func (p *poller) add(*benchClient) error { return errNotLinux }
func (p *poller) remove(*benchClient)    {}
func (p *poller) close()                 {}
