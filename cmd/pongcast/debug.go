package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// serveDebug serves the Go profiler on its own listener, never on the
// public one, and returns a function that stops it.
func serveDebug(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pongcast: debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiling enabled", "addr", ln.Addr().String())
	if !isLoopback(ln.Addr()) {
		log.Warn("the profiler listens beyond this machine: anyone who can reach it can read memory profiles and stall the server; use --debug-addr 127.0.0.1:6060", "addr", ln.Addr().String())
	}
	return func() { _ = srv.Close() }, nil
}

// isLoopback reports whether a listener is reachable from this machine
// only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
