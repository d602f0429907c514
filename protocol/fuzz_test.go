package protocol

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"
)

var exchangeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

func FuzzNormalizeExchange(f *testing.F) {
	for _, s := range []string{"gateio", "GateIO", "a", "-a", "a-", "okx.v5_main", "*", "", "gäte", "A_B.C-D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeExchange(in)
		if err != nil {
			if exchangeRE.MatchString(in) {
				t.Fatalf("valid name %q refused: %v", in, err)
			}
			return
		}
		if !exchangeRE.MatchString(got) {
			t.Fatalf("NormalizeExchange(%q) = %q, which breaks the name rule", in, got)
		}
		if again, err := NormalizeExchange(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
	})
}

// fuzzMaxNames is the server's default subscription limit plus the
// wildcard.
const fuzzMaxNames = 101

func FuzzDecodeClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","exchanges":["gateio","binance"],"id":"optional"}`,
		`{"type":"unsubscribe","exchanges":["*"],"id":3}`,
		`{"type":"ping"}`, `{"type":"ping","id":null}`, `{}`, `[]`, `null`, `{"type":"subscribe","exchanges":[]}`,
		`{"type":"subscribe","exchanges":["GATEIO","gateio"]}`, `{"type":"ping","id":1e400}`,
		`{"type":"history","exchange":"GateIO","since":1765738899909,"until":1765738899999,"limit":10,"id":"h"}`,
		`{"type":"history","exchange":"gateio","after":"1765738899909-3"}`, `{"type":"history","exchange":"*"}`,
		`{"type":"auth","token":"a.b.c","id":1}`, `{"type":"auth","token":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		msg, err := DecodeClientMessage(in, fuzzMaxNames)
		if err != nil {
			return
		}
		for _, e := range msg.Exchanges {
			if e != Wildcard && !exchangeRE.MatchString(e) {
				t.Fatalf("accepted invalid exchange %q", e)
			}
		}
		if hasDup(msg.Exchanges) {
			t.Fatalf("duplicates kept: %v", msg.Exchanges)
		}
		// Round trip: what was accepted re-encodes to a message that
		// decodes to the same thing.
		// Without HTML escaping, which would write an id's "&" as
		// \u0026: the same value, other bytes, and the id is echoed as
		// bytes.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(struct {
			clientWire
			historyWire
		}{clientWire{Type: msg.Type, Exchanges: msg.Exchanges, Window: msg.Window, Token: msg.Token, ID: msg.ID}, historyFields(msg.History)}); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		re := bytes.TrimSpace(buf.Bytes())
		back, err := DecodeClientMessage(re, fuzzMaxNames)
		if err != nil || back.Type != msg.Type || back.Window != msg.Window || back.Token != msg.Token || !slices.Equal(back.Exchanges, msg.Exchanges) ||
			!bytes.Equal(compactJSON(back.ID), compactJSON(msg.ID)) || (back.History == nil) != (msg.History == nil) ||
			(msg.History != nil && *back.History != *msg.History) {
			t.Fatalf("round trip of %s: %+v, %v; want %+v", re, back, err, msg)
		}
		// Any reply echoing the id is valid JSON.
		if !json.Valid(EncodePong(1, msg.ID)) {
			t.Fatalf("pong reply with id %s is not JSON", msg.ID)
		}
	})
}

func FuzzParsePong(f *testing.F) {
	for _, s := range []string{
		`{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"}`,
		`{"exchange":"GateIO","extra":{"a":[1,2,null]},"note":"caf\u00e9"}`,
		` {"exchange":"a"} `, `{"exchange":"a","latency":-1}`, `{"exchange":5}`, `[]`, `x`,
		"{\"exchange\":\"a\",\"n\":\"\xff\"}", `{"exchange":"a","status":"disconnected"}`,
	} {
		f.Add([]byte(s), uint16(2048))
	}
	f.Fuzz(func(t *testing.T, in []byte, capBytes uint16) {
		maxBytes := int(capBytes)%4096 + 128
		p, err := ParsePong(in, maxBytes)
		if err != nil {
			return
		}
		if !exchangeRE.MatchString(p.Exchange) {
			t.Fatalf("accepted exchange %q", p.Exchange)
		}
		for _, ts := range []int64{0, 1765738899920, -1 << 63} {
			env := AppendEnvelope(nil, p.Exchange, p.Data, ts)
			if len(env) > maxBytes {
				t.Fatalf("envelope of %d bytes passes the %d cap", len(env), maxBytes)
			}
			if !json.Valid(env) || !utf8.Valid(env) {
				t.Fatalf("envelope is not valid UTF-8 JSON: %q", env)
			}
			var back struct {
				Type     string          `json:"type"`
				Exchange string          `json:"exchange"`
				Data     json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(env, &back); err != nil {
				t.Fatal(err)
			}
			if back.Type != TypeExchangePong || back.Exchange != p.Exchange || !bytes.Equal(back.Data, bytes.TrimSpace(in)) {
				t.Fatalf("envelope does not carry the pong byte for byte: %s", env)
			}
		}
	})
}

// historyFields are the fields of a history message that decode to q
// (none for nil).
func historyFields(q *HistoryQuery) historyWire {
	if q == nil {
		return historyWire{}
	}
	limit := int64(q.Limit)
	w := historyWire{Exchange: &q.Exchange, Limit: &limit}
	if q.After.Set {
		after := q.After.String()
		w.After = &after
	} else {
		w.Since = &q.Since
	}
	if q.Until != NoUntil {
		w.Until = &q.Until
	}
	return w
}

func hasDup(s []string) bool {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[i] == s[j] {
				return true
			}
		}
	}
	return false
}

func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	if len(b) == 0 || json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}
