//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// historyExchanges are the exchanges the three-instance tests publish
// to, in turn.
var historyExchanges = []string{"gateio", "binance", "okx"}

// startInstances starts n pongcast processes on one Redis, channel and
// key prefix, and waits until each is subscribed.
func startInstances(t *testing.T, n int, redisURL, channel, prefix string) []*child {
	t.Helper()
	var out []*child
	for range n {
		c := startChild(t, "server", "--addr", "127.0.0.1:0", "--redis-url", redisURL, "--channel", channel, "--key-prefix", prefix)
		(&server{t: t, base: "http://" + c.addr}).waitReady()
		out = append(out, c)
	}
	return out
}

// publishBurst publishes pongs from seq on, in turn to each exchange,
// and calls at(i) before the i-th. Each must reach at least subs(i) of
// the three instances.
func publishBurst(t *testing.T, rc *goredis.Client, channel string, from, n int, subs func(i int) int64, at func(i int)) {
	t.Helper()
	for i := from; i < from+n; i++ {
		at(i)
		ex := historyExchanges[i%len(historyExchanges)]
		got, err := rc.Publish(context.Background(), channel, seqPong(ex, i)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := subs(i); got < want || got > 3 {
			t.Fatalf("pong %d reached %d instances, want %d to 3", i, got, want)
		}
	}
}

// streamSeqs reads an exchange's whole stream: the envelopes, and the
// sequence number each carries.
func streamSeqs(t *testing.T, rc *goredis.Client, key string) ([][]byte, []int) {
	t.Helper()
	msgs, err := rc.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var envs [][]byte
	var seqs []int
	for _, m := range msgs {
		env, _ := m.Values["env"].(string)
		var e struct {
			Data struct{ Latency int }
		}
		if err := json.Unmarshal([]byte(env), &e); err != nil {
			t.Fatalf("entry %s: %q: %v", m.ID, env, err)
		}
		envs = append(envs, []byte(env))
		seqs = append(seqs, e.Data.Latency)
	}
	return envs, seqs
}

// wantSeqs are the sequence numbers of exchange among the first n pongs.
func wantSeqs(exchange string, n int) []int {
	var out []int
	for i := range n {
		if historyExchanges[i%len(historyExchanges)] == exchange {
			out = append(out, i)
		}
	}
	return out
}

// waitStreams waits until each exchange's stream holds its share of the
// first n pongs, then checks it holds each once, in publish order, and
// returns the envelopes by exchange.
func waitStreams(t *testing.T, rc *goredis.Client, prefix string, n int) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for _, ex := range historyExchanges {
		key := prefix + "history:{" + ex + "}"
		want := wantSeqs(ex, n)
		waitFor(t, fmt.Sprintf("%d entries in %s", len(want), key), func() bool {
			return rc.XLen(context.Background(), key).Val() >= int64(len(want))
		})
		envs, seqs := streamSeqs(t, rc, key)
		if !slices.Equal(seqs, want) {
			t.Fatalf("%s holds %v\nwant each pong once, in publish order: %v", key, seqs, want)
		}
		out[ex] = envs
	}
	return out
}

// TestHistoryAcrossInstances: three instances on one Redis, clients on
// each, a burst of pongs through Redis: each exchange's stream holds
// every pong once, in publish order; the history message and the HTTP
// endpoint of any instance page through them, oldest first, for the
// exchanges the token allows only. One instance killed with SIGKILL in
// the middle of a second burst: still no pong missing or doubled.
func TestHistoryAcrossInstances(t *testing.T) {
	redisURL := hubtest.RedisURL(t)
	channel, prefix := hubtest.Channel(t), hubtest.KeyPrefix(t)
	rc := redisClient(t, redisURL)
	t.Cleanup(func() { // after the instances stop: a shared Redis keeps no test's history
		for _, ex := range historyExchanges {
			rc.Del(context.Background(), prefix+"history:{"+ex+"}", prefix+"history:{"+ex+"}:recent")
		}
		rc.Del(context.Background(), prefix+"snapshots")
	})
	procs := startInstances(t, 3, redisURL, channel, prefix)
	var clients []*hubtest.Client
	for _, p := range procs {
		c := hubtest.MustDial(t, "ws://"+p.addr+"/ws?exchanges=gateio,binance", hubtest.Token(t, "h", time.Hour, "gateio", "binance"))
		c.ReadType("subscribed")
		clients = append(clients, c)
	}

	const burst = 150
	publishBurst(t, rc, channel, 0, burst, func(int) int64 { return 3 }, func(int) {})
	for _, c := range clients {
		if seqs, err := readSeqs(c, burst-2); err != nil || len(seqs) != len(wantSeqs("gateio", burst))+len(wantSeqs("binance", burst)) {
			t.Fatalf("live pongs: %v, %v", seqs, err)
		}
	}
	streams := waitStreams(t, rc, prefix, burst)

	// The history message, pages of 7, through the second instance.
	c := clients[1]
	var got [][]byte
	req := map[string]any{"type": "history", "exchange": "gateio", "limit": 7}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		c.Send(req)
		m := c.ReadType("history")
		var r struct {
			Pongs  []json.RawMessage `json:"pongs"`
			More   bool              `json:"more"`
			Cursor string            `json:"cursor"`
		}
		if err := json.Unmarshal(m.Raw, &r); err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Pongs {
			got = append(got, p)
		}
		if !r.More {
			break
		}
		req["after"] = r.Cursor
	}
	if !slices.EqualFunc(got, streams["gateio"], bytes.Equal) {
		t.Fatalf("history message pages: %d pongs, want the stream's %d", len(got), len(streams["gateio"]))
	}
	c.Send(map[string]any{"type": "history", "exchange": "okx"})
	if m := c.ReadType("error"); m.Code != "forbidden" {
		t.Fatalf("history of okx under a gateio,binance token: %s", m.Raw)
	}

	// HTTP, through the third: one page of all, and the refusal.
	tok := hubtest.Token(t, "h", time.Hour, "gateio", "binance")
	base := "http://" + procs[2].addr
	var body struct {
		Exchange string            `json:"exchange"`
		Pongs    []json.RawMessage `json:"pongs"`
		More     bool              `json:"more"`
	}
	if resp := hubtest.GetJSON(t, base+"/v1/exchanges/binance/history?limit=1000", tok, &body); resp.StatusCode != http.StatusOK || body.More ||
		!slices.EqualFunc(asBytes(body.Pongs), streams["binance"], bytes.Equal) {
		t.Fatalf("GET binance history: %s, %d pongs (more %v), want the stream's %d", resp.Status, len(body.Pongs), body.More, len(streams["binance"]))
	}
	if resp := hubtest.GetJSON(t, base+"/v1/exchanges/okx/history", tok, &body); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET okx history under a gateio,binance token: %s", resp.Status)
	}

	// The second burst, the first instance killed in its middle.
	const second = 300
	killAt := burst + second/2
	publishBurst(t, rc, channel, burst, second, func(i int) int64 {
		if i >= killAt {
			return 2 // Redis may not have seen the dead connection close yet
		}
		return 3
	}, func(i int) {
		if i == killAt {
			procs[0].kill()
		}
	})
	waitStreams(t, rc, prefix, burst+second)
	for _, c := range clients[1:] {
		if _, err := readSeqs(c, burst+second-2); err != nil {
			t.Fatalf("live pongs after the kill: %v", err)
		}
	}

	// A fresh instance rebuilds its statistics from the history: the
	// counts a survivor has from the live pongs.
	fresh := startInstances(t, 1, redisURL, channel, prefix)[0]
	all := hubtest.Token(t, "s", time.Hour, "*")
	for _, ex := range historyExchanges {
		var live, rebuilt struct {
			Exchanges map[string]struct{ Count int } `json:"exchanges"`
		}
		hubtest.GetJSON(t, "http://"+procs[1].addr+"/v1/exchanges/"+ex+"?window=1h", all, &live)
		hubtest.GetJSON(t, "http://"+fresh.addr+"/v1/exchanges/"+ex+"?window=1h", all, &rebuilt)
		want := len(wantSeqs(ex, burst+second))
		if live.Exchanges[ex].Count != want || rebuilt.Exchanges[ex].Count != want {
			t.Errorf("%s pongs in the last hour: %d live, %d rebuilt from history, want %d", ex, live.Exchanges[ex].Count, rebuilt.Exchanges[ex].Count, want)
		}
	}
}

func asBytes(raw []json.RawMessage) [][]byte {
	out := make([][]byte, len(raw))
	for i, r := range raw {
		out[i] = r
	}
	return out
}
