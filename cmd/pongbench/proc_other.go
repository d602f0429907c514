//go:build !unix

package main

import "time"

// Elsewhere pongbench refuses to run (see poller_other.go); these keep
// it building so that go vet ./... works on any machine.

func raiseFileLimit() uint64                { return 0 }
func rssBytes(int) (uint64, error)          { return 0, errNotLinux }
func processCPU(int) (time.Duration, error) { return 0, errNotLinux }
func selfCPU() time.Duration                { return 0 }
