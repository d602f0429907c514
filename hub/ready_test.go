package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// readyBody fetches /readyz: its status code and body.
func readyBody(t *testing.T, s *testServer) (int, statusBody) {
	t.Helper()
	resp, err := http.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b statusBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// runServer runs s until the test ends.
func runServer(t *testing.T, s *testServer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// /readyz says which part is missing: the subscription, or the
// revocation list (subscribed, still loading: here its key holds
// something that is not a hash, so each load fails until it is fixed).
func TestReadyzSaysWhatIsMissing(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	admin := adminClient(t, url)
	key := RevocationsKey(prefix)
	if err := admin.Set(context.Background(), key, "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	dropKeys(t, url, prefix)
	s := newTestServer(t, Options{RedisURL: url, Channel: hubtest.Channel(t), KeyPrefix: prefix})
	runServer(t, s)
	waitFor(t, "the subscription live", s.feed.ready.Load)
	if code, b := readyBody(t, s); code != http.StatusServiceUnavailable || b.Status != "not_ready" ||
		b.Redis != "subscribed" || b.Revocations != "loading" {
		t.Fatalf("/readyz while the list cannot load: %d %+v, want 503 not_ready, subscribed, loading", code, b)
	}
	if err := admin.Del(context.Background(), key).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the list loaded on a retry", s.Ready)
	if code, b := readyBody(t, s); code != http.StatusOK || b.Status != "ready" ||
		b.Redis != "subscribed" || b.Revocations != "loaded" {
		t.Fatalf("/readyz once loaded: %d %+v, want 200 ready, subscribed, loaded", code, b)
	}

	down := newTestServer(t, Options{RedisURL: "redis://" + hubtest.DeadAddr(t) + "/0", Channel: hubtest.Channel(t), KeyPrefix: prefix})
	runServer(t, down)
	if code, b := readyBody(t, down); code != http.StatusServiceUnavailable || b.Redis != "not subscribed" || b.Revocations != "loading" {
		t.Fatalf("/readyz without Redis: %d %+v, want 503, not subscribed, loading", code, b)
	}
}
