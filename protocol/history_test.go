package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeHistory(t *testing.T) {
	ok := []struct {
		name, in string
		want     HistoryQuery
	}{
		{"defaults", `{"type":"history","exchange":"GateIO"}`,
			HistoryQuery{Exchange: "gateio", Until: NoUntil, Limit: DefaultHistoryLimit}},
		{"all", `{"type":"history","exchange":"gateio","since":5,"until":9,"limit":1000,"id":1}`,
			HistoryQuery{Exchange: "gateio", Since: 5, Until: 9, Limit: 1000}},
		{"since equals until", `{"type":"history","exchange":"gateio","since":9,"until":9}`,
			HistoryQuery{Exchange: "gateio", Since: 9, Until: 9, Limit: DefaultHistoryLimit}},
		{"empty after", `{"type":"history","exchange":"gateio","since":3,"after":""}`,
			HistoryQuery{Exchange: "gateio", Since: 3, Until: NoUntil, Limit: DefaultHistoryLimit}},
		{"after", `{"type":"history","exchange":"gateio","after":"1765738899920-18446744073709551615","limit":1}`,
			HistoryQuery{Exchange: "gateio", Until: NoUntil, Limit: 1, After: Cursor{Ms: 1765738899920, Seq: 1<<64 - 1, Set: true}}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := DecodeClientMessage([]byte(tc.in), 10)
			if err != nil || msg.Type != TypeHistory || msg.History == nil || *msg.History != tc.want {
				t.Fatalf("got %+v (%+v), %v; want %+v", msg, msg.History, err, tc.want)
			}
		})
	}
	bad := []struct{ name, in, want string }{
		{"no exchange", `{"type":"history"}`, `"exchange" must name one exchange`},
		{"wildcard", `{"type":"history","exchange":"*"}`, "invalid exchange name"},
		{"bad name", `{"type":"history","exchange":"-x"}`, "invalid exchange name"},
		{"exchange not a string", `{"type":"history","exchange":5}`, `field "exchange" has the wrong type`},
		{"since after until", `{"type":"history","exchange":"a","since":10,"until":9}`, `"since" (10) is after "until" (9)`},
		{"negative since", `{"type":"history","exchange":"a","since":-1}`, `"since" must be a time in Unix ms`},
		{"until too large", `{"type":"history","exchange":"a","until":1000000000000000}`, `"until" must be a time in Unix ms`},
		{"fractional since", `{"type":"history","exchange":"a","since":1.5}`, `field "since" has the wrong type`},
		{"since a string", `{"type":"history","exchange":"a","since":"1"}`, `field "since" has the wrong type`},
		{"limit zero", `{"type":"history","exchange":"a","limit":0}`, `"limit" must be 1 to 1000`},
		{"limit too large", `{"type":"history","exchange":"a","limit":1001}`, `"limit" must be 1 to 1000`},
		{"since and after", `{"type":"history","exchange":"a","since":1,"after":"1-0"}`, `give "since" or "after", not both`},
		{"bad cursor", `{"type":"history","exchange":"a","after":"12"}`, `"after" must be the cursor of a history reply`},
		{"cursor sign", `{"type":"history","exchange":"a","after":"+1-0"}`, `"after" must be the cursor`},
		{"cursor seq too large", `{"type":"history","exchange":"a","after":"1-18446744073709551616"}`, `"after" must be the cursor`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := DecodeClientMessage([]byte(tc.in+" "), 10)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %+v, %v; want a bad request saying %q", msg, err, tc.want)
			}
		})
	}
}

// TestEncodeHistory: the pongs are embedded byte for byte (no HTML
// escaping, no re-encoding), and the overhead bound holds for the
// longest cursor.
func TestEncodeHistory(t *testing.T) {
	p1 := AppendEnvelope(nil, "gateio", []byte(`{"exchange":"gateio","note":"<&>"}`), 1765738899920)
	p2 := AppendEnvelope(nil, "gateio", []byte(`{"exchange":"gateio"}`), 1765738899921)
	cur := Cursor{Ms: MaxHistoryMs, Seq: 1<<64 - 1, Set: true}
	id := json.RawMessage(`"req-1"`)
	b := EncodeHistory("gateio", [][]byte{p1, p2}, true, cur, id)
	want := `{"type":"history","exchange":"gateio","pongs":[` + string(p1) + `,` + string(p2) +
		`],"more":true,"cursor":"999999999999999-18446744073709551615","id":"req-1"}`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
	if !json.Valid(b) {
		t.Fatal("not JSON")
	}
	if n := len(b) - len(p1) - len(p2) - 1; n > HistoryOverhead("gateio", id) {
		t.Errorf("overhead %d passes HistoryOverhead %d", n, HistoryOverhead("gateio", id))
	}
	empty := AppendHistory(nil, false, "gateio", nil, false, Cursor{}, nil)
	if string(empty) != `{"exchange":"gateio","pongs":[],"more":false}` {
		t.Errorf("empty HTTP body: %s", empty)
	}
	if c, err := ParseCursor(cur.String()); err != nil || c != cur {
		t.Errorf("cursor round trip: %+v, %v", c, err)
	}
	off := EnvelopeDataOffset("gateio")
	if !bytes.HasPrefix(p2[off:], []byte(`{"exchange":"gateio"}`)) {
		t.Errorf("data offset %d: %s", off, p2[off:])
	}
}
