package health

import (
	"bytes"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrent: one routing goroutine observes and expires while
// readers take snapshots, statuses and statistics. Run with -race: a
// snapshot buffer written after it was handed out would show here, and
// so would a snapshot whose bytes do not match its Seq.
func TestConcurrent(t *testing.T) {
	tr := newTracker(t, Config{StaleAfter: 50 * time.Millisecond, ForgetAfter: 60 * time.Millisecond})
	exchanges := []string{"binance", "gateio", "kraken", "okx"}
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for i := range 4000 {
			now := at(time.Duration(i) * time.Millisecond)
			name := exchanges[i%len(exchanges)]
			if i%97 != 0 { // now and then one falls silent and goes stale
				tr.Observe(name, connected(float64(i%1500)), now, seqEnv(i))
			}
			tr.Expire(now)
			tr.Forget(now, nil)
		}
	}()
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var names []string
			for i := 0; !done.Load(); i++ {
				name := exchanges[(i+r)%len(exchanges)]
				if s, ok := tr.Snapshot(name); ok {
					var v struct{ I int }
					if err := json.Unmarshal(s.Env, &v); err != nil || !bytes.Equal(s.Env, seqEnv(v.I)) {
						t.Errorf("torn snapshot %q", s.Env)
						return
					}
				}
				tr.Status(name)
				tr.Stats(name, Windows[i%len(Windows)], at(time.Duration(i)*time.Millisecond))
				names = tr.Exchanges(names[:0])
				tr.Counts()
				tr.NextDeadline()
				tr.Held(names[:0])
			}
		}()
	}
	wg.Wait()
	if c := tr.Counts(); c.Tracked() != len(exchanges) {
		t.Errorf("counts %+v", c)
	}
}

func seqEnv(i int) []byte {
	b, _ := json.Marshal(struct{ I int }{i})
	return b
}
