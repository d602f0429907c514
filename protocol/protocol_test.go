package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNormalizeExchange(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"gateio", "gateio", true},
		{"GateIO", "gateio", true},
		{"binance-us", "binance-us", true},
		{"okx.v5_main", "okx.v5_main", true},
		{"0x", "0x", true},
		{strings.Repeat("a", 64), strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), "", false},
		{"", "", false},
		{"-gate", "", false},
		{".gate", "", false},
		{"gate io", "", false},
		{"gate/io", "", false},
		{"*", "", false},
		{"gäte", "", false},
		{"gate\x00", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeExchange(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("NormalizeExchange(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidExchange) {
				t.Fatalf("error %v does not wrap ErrInvalidExchange", err)
			}
		})
	}
}

func TestDecodeClientMessage(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		typ       string
		exchanges string
		id        string
		errHas    string
	}{
		{"subscribe", `{"type":"subscribe","exchanges":["GateIO","binance","gateio"],"id":"a1"}`, "subscribe", "gateio,binance", `"a1"`, ""},
		{"unsubscribe numeric id", `{"type":"unsubscribe","exchanges":["*"],"id":12}`, "unsubscribe", "*", "12", ""},
		{"ping", `{"type":"ping"}`, "ping", "", "", ""},
		{"ping ignores exchanges", `{"type":"ping","exchanges":"whatever"}`, "", "", "", "wrong type"},
		{"unknown fields ignored", `{"type":"ping","extra":{"x":1}}`, "ping", "", "", ""},
		{"null id", `{"type":"ping","id":null}`, "ping", "", "", ""},
		{"not json", `hello`, "", "", "", "invalid JSON"},
		{"array", `[1,2]`, "", "", "", "want a JSON object"},
		{"missing type", `{"exchanges":["a"]}`, "", "", "", "missing \"type\""},
		{"unknown type", `{"type":"publish"}`, "", "", "", "unknown type"},
		{"empty exchanges", `{"type":"subscribe","exchanges":[]}`, "", "", "", "non-empty"},
		{"no exchanges", `{"type":"subscribe"}`, "", "", "", "non-empty"},
		{"bad name", `{"type":"subscribe","exchanges":["ok","no way"]}`, "", "", "", "invalid exchange"},
		{"exchanges not strings", `{"type":"subscribe","exchanges":[1]}`, "", "", "", "wrong type"},
		{"object id", `{"type":"ping","id":{"a":1}}`, "", "", "", "string or a number"},
		{"long id", `{"type":"ping","id":"` + strings.Repeat("x", 200) + `"}`, "", "", "", "longer than"},
		{"bad id keeps type error out", `{"type":"nope","id":true}`, "", "", "", "string or a number"},
		{"stats", `{"type":"stats","exchanges":["GateIO"],"window":"5m","id":1}`, "stats", "gateio", "1", ""},
		{"stats of everything", `{"type":"stats"}`, "stats", "", "", ""},
		{"names at the cap", `{"type":"subscribe","exchanges":["a","b","a"]}`, "subscribe", "a,b", "", ""},
		{"names past the cap", `{"type":"subscribe","exchanges":["a","a","a","a"]}`, "", "", "", "more than 3 names"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := DecodeClientMessage([]byte(tc.in), testMaxNames)
			if tc.errHas != "" {
				if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want ErrBadRequest containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg.Type != tc.typ || strings.Join(msg.Exchanges, ",") != tc.exchanges || string(msg.ID) != tc.id {
				t.Fatalf("got %+v (id %s)", msg, msg.ID)
			}
		})
	}
}

// testMaxNames caps the lists of TestDecodeClientMessage; the cases at and
// past it sit just around it.
const testMaxNames = 3

func TestDecodeErrorKeepsID(t *testing.T) {
	msg, err := DecodeClientMessage([]byte(`{"type":"subscribe","exchanges":["bad name"],"id":"x9"}`), testMaxNames)
	if err == nil || string(msg.ID) != `"x9"` {
		t.Fatalf("id %s, err %v: the id must survive a refusal", msg.ID, err)
	}
}

func TestServerMessages(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"subscribed", EncodeSubscriptions(TypeSubscribed, []string{"*", "gateio"}, nil, json.RawMessage(`"r"`)), `{"type":"subscribed","exchanges":["*","gateio"],"id":"r"}`},
		{"unsubscribed empty", EncodeSubscriptions(TypeUnsubscribed, nil, nil, nil), `{"type":"unsubscribed","exchanges":[]}`},
		{"subscribed with unseen", EncodeSubscriptions(TypeSubscribed, []string{"gatio", "gateio"}, []string{"gatio"}, nil), `{"type":"subscribed","exchanges":["gatio","gateio"],"unseen":["gatio"]}`},
		{"status", EncodeStatus("gateio", "stale", "up", 1765738899909, "no pong for 2m0s"), `{"type":"exchange:status","exchange":"gateio","status":"stale","previous":"up","since":1765738899909,"reason":"no pong for 2m0s"}`},
		{"first status", EncodeStatus("gateio", "up", "", 1, "pong received"), `{"type":"exchange:status","exchange":"gateio","status":"up","since":1,"reason":"pong received"}`},
		{"stats", EncodeStats("5m", map[string]json.RawMessage{"gateio": json.RawMessage(`{"count":1}`)}, false, json.RawMessage(`3`)), `{"type":"stats","window":"5m","exchanges":{"gateio":{"count":1}},"id":3}`},
		{"snapshot", AppendSnapshot(nil, AppendEnvelope(nil, "gateio", []byte(`{"exchange":"gateio"}`), 7)), `{"type":"exchange:pong","exchange":"gateio","data":{"exchange":"gateio"},"timestamp":7,"source":"exchange","snapshot":true}`},
		{"pong", EncodePong(1765738899920, json.RawMessage(`5`)), `{"type":"pong","timestamp":1765738899920,"id":5}`},
		{"error", EncodeError(CodeForbidden, "no <kraken>", nil), `{"type":"error","code":"forbidden","message":"no \u003ckraken\u003e"}`},
		{"bad raw id never panics", EncodePong(1, json.RawMessage(`{`)), string(encodeFailed)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
		})
	}
}

func TestParsePong(t *testing.T) {
	cases := []struct {
		name, in, exchange, reason string
	}{
		{"seed example", `{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"}`, "gateio", ""},
		{"minimal", `{"exchange":"Binance"}`, "binance", ""},
		{"unknown fields kept", `{"exchange":"okx","extra":[1,{"a":null}]}`, "okx", ""},
		{"fractional latency", `{"exchange":"okx","latency":0.25}`, "okx", ""},
		{"escaped name", `{"exchange":"gate\u0069o"}`, "gateio", ""},
		{"status error", `{"exchange":"okx","status":"error"}`, "okx", ""},
		{"empty", ``, "", RejectNotJSON},
		{"spaces", `   `, "", RejectNotJSON},
		{"truncated", `{"exchange":"gateio"`, "", RejectNotJSON},
		{"trailing garbage", `{"exchange":"gateio"} x`, "", RejectNotJSON},
		{"array", `[{"exchange":"gateio"}]`, "", RejectNotObject},
		{"string", `"gateio"`, "", RejectNotObject},
		{"null", `null`, "", RejectNotObject},
		{"no exchange", `{"latency":1}`, "", RejectBadExchange},
		{"exchange number", `{"exchange":5}`, "", RejectBadExchange},
		{"exchange null", `{"exchange":null}`, "", RejectBadExchange},
		{"exchange invalid", `{"exchange":"gate io"}`, "", RejectBadExchange},
		{"exchange wildcard", `{"exchange":"*"}`, "", RejectBadExchange},
		{"case-folded key is not the key", `{"EXCHANGE":"gateio"}`, "", RejectBadExchange},
		{"negative latency", `{"exchange":"a","latency":-0.5}`, "", RejectBadLatency},
		{"string latency", `{"exchange":"a","latency":"45"}`, "", RejectBadLatency},
		{"null latency", `{"exchange":"a","latency":null}`, "", RejectBadLatency},
		{"huge latency", `{"exchange":"a","latency":1e999}`, "", RejectBadLatency},
		{"string timestamp", `{"exchange":"a","timestamp":"now"}`, "", RejectBadTimestamp},
		{"bool timestamp", `{"exchange":"a","timestamp":true}`, "", RejectBadTimestamp},
		{"unknown status", `{"exchange":"a","status":"ok"}`, "", RejectBadStatus},
		{"status number", `{"exchange":"a","status":1}`, "", RejectBadStatus},
		{"invalid utf8", "{\"exchange\":\"a\",\"n\":\"\xc3\x28\"}", "", RejectInvalidUTF8},
		{"too large", `{"exchange":"a","p":"` + strings.Repeat("x", DefaultMaxMessageBytes) + `"}`, "", RejectTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePong([]byte(tc.in), DefaultMaxMessageBytes)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.Exchange != tc.exchange || string(p.Data) != strings.TrimSpace(tc.in) {
					t.Fatalf("got %q %s", p.Exchange, p.Data)
				}
				return
			}
			var pe *PongError
			if !errors.As(err, &pe) || pe.Reason != tc.reason {
				t.Fatalf("err = %v, want reason %s", err, tc.reason)
			}
		})
	}
}

func TestEnvelopeAtTheCap(t *testing.T) {
	// The largest accepted pong always yields an envelope, and its
	// snapshot form, within the cap, whatever the clock says; one byte
	// more is refused.
	const maxBytes = 2048
	base := `{"exchange":"gateio","p":""}`
	var largest []byte
	for n := 0; ; n++ {
		in := []byte(strings.Replace(base, `""`, `"`+strings.Repeat("x", n)+`"`, 1))
		if _, err := ParsePong(in, maxBytes); err != nil {
			break
		}
		largest = in
	}
	p, _ := ParsePong(largest, maxBytes)
	env := AppendSnapshot(nil, AppendEnvelope(nil, p.Exchange, p.Data, -9223372036854775808))
	if len(env) != maxBytes || SnapshotLen(len(env)-len(`,"snapshot":true`)) != len(env) {
		t.Fatalf("worst-case snapshot of the largest pong is %d bytes, want exactly %d", len(env), maxBytes)
	}
	if EnvelopeLen(p.Exchange, p.Data, 1765738899920) != len(AppendEnvelope(nil, p.Exchange, p.Data, 1765738899920)) {
		t.Fatal("EnvelopeLen disagrees with AppendEnvelope")
	}
}

// What health is judged by comes out of the one parse.
func TestParsePongHealthFields(t *testing.T) {
	p, err := ParsePong([]byte(`{"exchange":"gateio","latency":45.5,"status":"disconnected"}`), DefaultMaxMessageBytes)
	if err != nil || p.Status != "disconnected" || !p.HasLatency || p.Latency != 45.5 {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = ParsePong([]byte(`{"exchange":"gateio"}`), DefaultMaxMessageBytes)
	if err != nil || p.Status != "" || p.HasLatency {
		t.Fatalf("%+v %v", p, err)
	}
}
