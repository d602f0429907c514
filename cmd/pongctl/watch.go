package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

func (e env) watch(ctx context.Context, args []string) error {
	fs := e.flagSet("watch", "watch --url ws://host:2808 [--token <jwt>] --exchanges <a,b|*> [flags]\n\n"+
		"The token comes from --token or, when that is not given, from PONGCAST_TOKEN:\n"+
		"a flag's value shows in ps and in the shell's history, a variable's does not.")
	rawURL := fs.String("url", e.envOr("PONGCAST_URL", "ws://127.0.0.1:2808"), "server WebSocket URL (env PONGCAST_URL)")
	// No default from the environment: --help would print the token.
	token := fs.String("token", "", "JWT to connect with, sent as Authorization: Bearer (if not given: env PONGCAST_TOKEN)")
	exchanges := fs.String("exchanges", "*", "comma-separated exchanges to subscribe to, or * for all the token allows")
	count := fs.Int("count", 0, "exit after this many live pongs; snapshots are printed, not counted (0: run until interrupted)")
	timeout := fs.Duration("timeout", 0, "exit with an error if no pong arrives within this long (0: wait forever)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, "--exchanges gateio"); err != nil {
		return err
	}
	if *count < 0 {
		return usagef("watch: --count must be 0 (run until interrupted) or more, got %d", *count)
	}
	if *timeout < 0 {
		return usagef("watch: --timeout must be 0 (wait forever) or more, for example --timeout 90s, got %s", *timeout)
	}
	if *token == "" {
		*token = e.getenv("PONGCAST_TOKEN")
	}
	if *token == "" {
		return usagef("watch: no token: set PONGCAST_TOKEN=<jwt> (or give --token <jwt>); issue one with: pongctl token issue --sub me --exchanges '*'")
	}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return usagef("watch: --url must be a ws:// or wss:// URL, got %q", *rawURL)
	}
	names, err := exchangeList("watch", *exchanges)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		q := u.Query()
		q.Set("exchanges", strings.Join(names, ","))
		u.RawQuery = q.Encode()
	}

	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dialCtx, u.String(), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + *token}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body struct{ Message string }
			if resp.Body != nil {
				_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
			}
			return fmt.Errorf("connect %s: HTTP %s: %s", *rawURL, resp.Status, body.Message)
		}
		return fmt.Errorf("connect %s: %w", *rawURL, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	fmt.Fprintf(e.stderr, "connected to %s\n", *rawURL)

	pongs := 0
	for {
		readCtx, cancelRead := ctx, context.CancelFunc(func() {})
		if *timeout > 0 {
			readCtx, cancelRead = context.WithTimeout(ctx, *timeout)
		}
		_, data, err := conn.Read(readCtx)
		cancelRead()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				conn.Close(websocket.StatusNormalClosure, "bye")
				return nil
			case errors.Is(err, context.DeadlineExceeded):
				return fmt.Errorf("no message within %s", *timeout)
			case websocket.CloseStatus(err) == websocket.StatusNormalClosure:
				return nil
			case websocket.CloseStatus(err) != -1:
				var ce websocket.CloseError
				errors.As(err, &ce)
				return fmt.Errorf("server closed the connection: %d %s", ce.Code, ce.Reason)
			}
			return fmt.Errorf("read: %w", err)
		}
		fmt.Fprintln(e.stdout, string(data))
		// Snapshots (the last pong known, sent on subscribe) are printed,
		// not counted: --count waits for live pongs.
		if strings.HasPrefix(string(data), `{"type":"exchange:pong"`) && !strings.HasSuffix(string(data), `,"snapshot":true}`) {
			pongs++
			if *count > 0 && pongs >= *count {
				conn.Close(websocket.StatusNormalClosure, "done")
				return nil
			}
		}
	}
}
