package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakSample is one look at the server during a soak.
type soakSample struct {
	Seconds          float64 `json:"t_seconds"`
	Connected        int     `json:"clients_connected"`
	ServerRSS        uint64  `json:"server_rss_bytes,omitempty"`
	ServerGoroutines int     `json:"server_goroutines,omitempty"`
	Received         int64   `json:"deliveries_received"`
}

// soakReport is what runSoak measures.
type soakReport struct {
	Label           string       `json:"label,omitempty"`
	Clients         int          `json:"clients"`
	StableClients   int          `json:"stable_clients"`
	Exchanges       int          `json:"exchanges"`
	RatePerSec      float64      `json:"rate_per_sec"`
	DurationSeconds float64      `json:"duration_seconds"`
	Published       int          `json:"published"`
	ChurnClosed     int64        `json:"churn_disconnects"`
	ChurnConnected  int64        `json:"churn_connects"`
	ChurnErrors     int64        `json:"churn_connect_errors"`
	StableExpected  int64        `json:"stable_deliveries_expected"`
	StableReceived  int64        `json:"stable_deliveries_received"`
	StableLost      int64        `json:"stable_deliveries_lost"`
	ClosedByServer  int64        `json:"clients_closed_by_server"`
	Samples         []soakSample `json:"samples"`
}

// runSoak keeps o.clients connected for o.duration while pongs flow at
// o.rate: a fraction of them never leave (their deliveries are checked one
// by one), the rest churn. It samples the server's RSS and goroutines.
func runSoak(ctx context.Context, o *options, log io.Writer) (*soakReport, error) {
	r := &soakReport{Label: o.label, Clients: o.clients, Exchanges: o.exchanges, RatePerSec: o.rate}
	if need := uint64(o.clients + 256); raiseFileLimit() < need {
		return nil, fmt.Errorf("%d clients need %d open files", o.clients, need)
	}
	if o.rate <= 0 || o.duration <= 0 {
		return nil, fmt.Errorf("soak needs --rate and --duration")
	}
	// Tokens for the clients that will join later, too.
	churners := o.clients - int(float64(o.clients)*o.stableClients)
	joiners := int(float64(churners)*o.churn*o.duration.Seconds()) + 1
	o2 := *o
	o2.clients = o.clients + joiners
	f, err := newFleet(&o2)
	if err != nil {
		return nil, err
	}
	f.o = o
	fmt.Fprintf(log, "soak: connecting %d clients ...\n", o.clients)
	if n, err := f.connectAll(ctx, 0, o.clients); n < o.clients {
		return nil, fmt.Errorf("soak: connected %d of %d: %v", n, o.clients, err)
	}
	defer f.closeAll()
	r.StableClients = o.clients - churners

	// Stable clients are those with an index below StableClients.
	stableSubs := map[string]int{}
	f.mu.Lock()
	for _, c := range f.clients {
		if c.idx < r.StableClients {
			stableSubs[c.exchange]++
		}
	}
	f.mu.Unlock()

	pub, err := newPublisher(o)
	if err != nil {
		return nil, err
	}
	defer pub.client.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var next atomic.Int64
	next.Store(int64(o.clients))
	wg.Add(2)
	go func() { // churn
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			f.mu.Lock()
			var victims []*benchClient
			kept := f.clients[:0]
			want := int(float64(churners) * o.churn)
			for _, c := range f.clients {
				if c.idx >= r.StableClients && len(victims) < want && rand.IntN(4) == 0 {
					victims = append(victims, c)
				} else {
					kept = append(kept, c)
				}
			}
			f.clients = kept
			f.mu.Unlock()
			for _, c := range victims {
				f.poller.remove(c)
				c.ws.close()
				atomic.AddInt64(&r.ChurnClosed, 1)
			}
			for range victims {
				i := int(next.Add(1)) - 1
				c, err := f.connect(ctx, i)
				if err != nil {
					atomic.AddInt64(&r.ChurnErrors, 1)
					continue
				}
				atomic.AddInt64(&r.ChurnConnected, 1)
				f.mu.Lock()
				f.clients = append(f.clients, c)
				f.mu.Unlock()
			}
		}
	}()
	begin := time.Now()
	var samplesMu sync.Mutex
	go func() { // sample
		defer wg.Done()
		tick := time.NewTicker(o.sampleEvery)
		defer tick.Stop()
		for {
			s := soakSample{Seconds: time.Since(begin).Seconds(), Received: f.received.Load()}
			f.mu.Lock()
			s.Connected = len(f.clients)
			f.mu.Unlock()
			if o.serverPID > 0 {
				s.ServerRSS, _ = rssBytes(o.serverPID)
			}
			if o.metricsURL != "" {
				s.ServerGoroutines = scrapeGoroutines(o.metricsURL)
			}
			samplesMu.Lock()
			r.Samples = append(r.Samples, s)
			samplesMu.Unlock()
			fmt.Fprintf(log, "soak: t=%4.0fs clients=%d rss=%.1fMiB goroutines=%d deliveries=%d\n",
				s.Seconds, s.Connected, float64(s.ServerRSS)/(1<<20), s.ServerGoroutines, s.Received)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	_ = pub.run(ctx, o.rate, o.duration, begin, func(ex string, err error) error {
		if err != nil {
			fmt.Fprintf(log, "soak: publish: %v\n", err)
			return nil // a soak rides out a failed publish
		}
		r.StableExpected += int64(stableSubs[ex] + stableSubs[""])
		return nil
	})
	close(stop)
	wg.Wait()
	r.DurationSeconds = time.Since(begin).Seconds()
	r.Published = pub.sent

	stableReceived := func() int64 {
		var n int64
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.clients {
			if c.idx < r.StableClients {
				n += c.received.Load()
			}
		}
		return n
	}
	deadline := time.Now().Add(o.drain)
	for stableReceived() < r.StableExpected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.StableReceived = stableReceived()
	r.StableLost = max(0, r.StableExpected-r.StableReceived)
	r.ClosedByServer = f.closed.Load()
	return r, nil
}

// scrapeGoroutines reads go_goroutines from a Prometheus endpoint.
func scrapeGoroutines(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

func (r *soakReport) table(w io.Writer) {
	row := func(k string, v any) { fmt.Fprintf(w, "%-28s %v\n", k, v) }
	if r.Label != "" {
		row("workload", r.Label)
	}
	row("clients", fmt.Sprintf("%d (%d never leave)", r.Clients, r.StableClients))
	row("duration", fmt.Sprintf("%.0fs, %d pongs at %.0f/s over %d exchanges", r.DurationSeconds, r.Published, r.RatePerSec, r.Exchanges))
	row("churn", fmt.Sprintf("%d disconnects, %d connects, %d connect errors", r.ChurnClosed, r.ChurnConnected, r.ChurnErrors))
	row("stable clients' deliveries", fmt.Sprintf("expected %d, received %d, lost %d", r.StableExpected, r.StableReceived, r.StableLost))
	row("clients closed by server", r.ClosedByServer)
	fmt.Fprintf(w, "%8s %8s %12s %11s %14s\n", "t(s)", "clients", "server RSS", "goroutines", "deliveries")
	for _, s := range r.Samples {
		fmt.Fprintf(w, "%8.0f %8d %10.1fMiB %11d %14d\n", s.Seconds, s.Connected, float64(s.ServerRSS)/(1<<20), s.ServerGoroutines, s.Received)
	}
}
