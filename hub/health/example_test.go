package health_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pongcast/pongcast/hub/health"
)

// The calls an integrator makes: Observe on the routing path, one timer
// on NextDeadline and Expire, and Stats for a stats request.
func Example() {
	tr, _ := health.NewTracker(health.Config{})
	start := time.UnixMilli(1_765_738_800_000)
	report := func(obs health.Observation) {
		if obs.Changed { // send an exchange:status message to the subscribers
			t := obs.Transition
			fmt.Printf("%s: %q → %s (%s)\n", t.Exchange, t.Previous, t.Status, t.Reason)
		}
	}
	env := []byte(`{"type":"exchange:pong","exchange":"gateio",...}`)
	report(tr.Observe("gateio", health.Sample{Status: "connected", Latency: 45, HasLatency: true}, start, env))
	report(tr.Observe("gateio", health.Sample{Status: "connected", Latency: 1450, HasLatency: true}, start.Add(30*time.Second), env))

	// The timer: sleep until NextDeadline, then Expire.
	deadline, _ := tr.NextDeadline()
	for _, t := range tr.Expire(deadline) {
		fmt.Printf("%s: %s → %s (%s) at +%v\n", t.Exchange, t.Previous, t.Status, t.Reason, t.Since.Sub(start))
	}

	st, _ := tr.Stats("gateio", health.Window1h, start.Add(5*time.Minute))
	out, _ := json.Marshal(st)
	fmt.Println(string(out))
	// Output:
	// gateio: "" → up (pong received)
	// gateio: "up" → slow (latency 1450 ms over 1000 ms)
	// gateio: slow → stale (no pong for 2m0s) at +2m30s
	// {"count":2,"availability":0.5,"latency":{"avg":747.5,"p50":45,"p95":1450,"p99":1450,"max":1450},"status":"stale","since":1765738950000}
}
