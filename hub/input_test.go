package hub

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// distinctNames returns n valid, distinct exchange names.
func distinctNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "x" + strconv.Itoa(i)
	}
	return out
}

// getJSON makes a plain GET (no upgrade) with the token in the header and
// decodes the JSON refusal.
func getJSON(t *testing.T, rawURL, token string) (*http.Response, httpError) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body httpError
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: body is not a JSON refusal: %v", resp.Status, err)
	}
	return resp, body
}

// A list longer than any client may hold is refused before a name is
// looked at, over the socket and in ?exchanges= (both used to normalise
// thousands of names, in quadratic time, first).
func TestLongExchangeListsRefusedAtOnce(t *testing.T) {
	s := newTestServer(t, Options{MaxSubscriptions: 5})
	tok := hubtest.Token(t, "long", time.Hour, "gateio")
	long := distinctNames(1400) // about 11 KB: inside the message cap

	c := s.dial(t, "", "gateio")
	c.Send(map[string]any{"type": "subscribe", "exchanges": long, "id": 7})
	m := c.ReadType("error")
	if m.Code != "bad_request" || !strings.Contains(m.Message, "more than 6 names") || string(m.ID) != "7" {
		t.Fatalf("long subscribe: %s, want bad_request naming the cap of 6", m.Raw)
	}
	// Six names (the cap) of which five are repeats are fine.
	if set := c.Subscribe("gateio", "GATEIO", "gateio", "gateio", "gateio", "gateio"); strings.Join(set, ",") != "gateio" {
		t.Fatalf("set %v", set)
	}

	q := url.Values{ExchangesParam: {strings.Join(long, ",")}}
	resp, body := getJSON(t, s.url+"/?"+q.Encode(), tok)
	if resp.StatusCode != http.StatusBadRequest || body.Error != "bad_request" || !strings.Contains(body.Message, "more than 6 names") {
		t.Fatalf("long ?exchanges=: %s %+v, want 400 bad_request naming the cap", resp.Status, body)
	}
}
