package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pongcast/pongcast/config"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// TestDevBanner: the banner says where the secret came from, shows no
// Redis credentials, and builds its commands from the parsed Redis URL.
// (The banner of a plain make run, and that its commands work as
// printed, is TestMakeRun's.) In want, {secret} and {token} stand for the
// run's own.
func TestDevBanner(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(hubtest.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key.pem")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	const plain = "redis://127.0.0.1:6390/0" // nothing is dialled
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		want  []string
		never []string
	}{
		{
			name: "random secret",
			args: []string{"--redis-url", plain},
			want: []string{
				"\npongcast dev mode: listening on ws://127.0.0.1:2808, Redis at redis://127.0.0.1:6390, channel \"exchange:pong\"\n",
				"bin/pongctl is built by make run and make build",
				"\nJWT secret: random, made for this run (set PONGCAST_JWT_SECRET to choose one). To sign more tokens with it:\n" +
					"  export PONGCAST_JWT_SECRET={secret}\n  bin/pongctl token issue --sub me --exchanges '*'\n",
				"\n  wscat -c 'ws://127.0.0.1:2808/?access_token={token}&exchanges=gateio'\n",
				"\n  PONGCAST_TOKEN={token} bin/pongctl watch --url ws://127.0.0.1:2808 --exchanges gateio\n",
				"\n  redis-cli -h 127.0.0.1 -p 6390 PUBLISH exchange:pong '{\"exchange\":\"gateio\",\"latency\":45,\"timestamp\":",
				"\n  bin/pongctl publish --redis-url redis://127.0.0.1:6390/0 --exchange gateio --latency 45 --status connected\n\n",
			},
			never: []string{"--token", "go run", "(embedded)", "--channel", "not shown", "from the environment"},
		},
		{
			name:  "secret from the environment",
			env:   map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret},
			args:  []string{"--redis-url", plain},
			want:  []string{"\nJWT secret: PONGCAST_JWT_SECRET from the environment.\n\nToken (sub=dev"},
			never: []string{hubtest.Secret, "random", "export", "token issue"},
		},
		{
			name:  "secret from a file",
			args:  []string{"--redis-url", plain, "--jwt-secret-file", secretFile},
			want:  []string{"\nJWT secret: the file of --jwt-secret-file (PONGCAST_JWT_SECRET_FILE).\n"},
			never: []string{hubtest.Secret, "random", "export"},
		},
		{
			name: "public key",
			args: []string{"--redis-url", plain, "--jwt-public-key-file", keyFile},
			want: []string{"\nA public key is configured: issue tokens with your own private key.\n\nPublish a pong:\n"},
			// No token to print, so nothing that would need one.
			never: []string{"Token", "wscat", "watch", "JWT secret"},
		},
		{
			name: "issuer and audience go into the token command",
			args: []string{"--redis-url", plain, "--jwt-issuer", "dev's issuer", "--jwt-audience", "pongcast"},
			want: []string{"  bin/pongctl token issue --sub me --exchanges '*' --iss 'dev'\\''s issuer' --aud pongcast\n"},
		},
		{
			name: "user and password",
			args: []string{"--redis-url", "redis://alice:S3cret@127.0.0.1:6390/2"},
			want: []string{
				"Redis at redis://127.0.0.1:6390 (its user name and password not shown), channel",
				"\nPublish a pong (put in your Redis URL's user name and password):\n" +
					"  REDISCLI_AUTH='<password>' redis-cli -h 127.0.0.1 -p 6390 --user '<user>' PUBLISH exchange:pong '{",
				"\n  bin/pongctl publish --redis-url 'redis://<user>:<password>@127.0.0.1:6390/2' --exchange gateio",
			},
			never: []string{"S3cret", "alice"},
		},
		{
			// The old banner trimmed "redis://" and "/0" off the URL and
			// split what was left: here that gave "-h  -p ".
			name: "password alone, IPv6 host",
			args: []string{"--redis-url", "redis://:S3cret@[::1]:6390/0"},
			want: []string{
				"Redis at redis://[::1]:6390 (its user name and password not shown), channel",
				"\n  REDISCLI_AUTH='<password>' redis-cli -h ::1 -p 6390 PUBLISH exchange:pong '{",
				"\n  bin/pongctl publish --redis-url 'redis://:<password>@[::1]:6390/0' --exchange gateio",
			},
			never: []string{"S3cret", "<user>"},
		},
		{
			name: "tls",
			args: []string{"--redis-url", "rediss://redis.internal:6390/0"},
			want: []string{
				"Redis at rediss://redis.internal:6390, channel",
				"\n  redis-cli -h redis.internal -p 6390 --tls PUBLISH exchange:pong '{",
				"\n  bin/pongctl publish --redis-url rediss://redis.internal:6390/0 --exchange gateio",
			},
		},
		{
			name: "unix socket",
			args: []string{"--redis-url", "unix:///run/redis/redis.sock?db=1"},
			want: []string{
				"Redis at unix:///run/redis/redis.sock, channel",
				"\n  redis-cli -s /run/redis/redis.sock PUBLISH exchange:pong '{",
				"\n  bin/pongctl publish --redis-url 'unix:///run/redis/redis.sock?db=1' --exchange gateio",
			},
		},
		{
			name: "unix socket with a password",
			args: []string{"--redis-url", "unix://:S3cret@/run/redis/redis.sock?db=1"},
			want: []string{
				"Redis at unix:///run/redis/redis.sock (its user name and password not shown), channel",
				"\n  REDISCLI_AUTH='<password>' redis-cli -s /run/redis/redis.sock PUBLISH exchange:pong '{",
				"\n  bin/pongctl publish --redis-url 'unix://:<password>@/run/redis/redis.sock?db=1' --exchange gateio",
			},
			never: []string{"S3cret"},
		},
		{
			name: "options and a channel of its own, quoted for the shell",
			args: []string{"--redis-url", plain + "?dial_timeout=2s&max_retries=1", "--channel", "pongs of mine"},
			want: []string{
				`channel "pongs of mine"`,
				"\n  redis-cli -h 127.0.0.1 -p 6390 PUBLISH 'pongs of mine' '{",
				"\n  bin/pongctl publish --redis-url 'redis://127.0.0.1:6390/0?dial_timeout=2s&max_retries=1' --channel 'pongs of mine' --exchange gateio",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			cfg, err := config.Load(append([]string{"--dev"}, tc.args...), getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			d, err := startDev(cfg, getenv, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.redis != nil {
				t.Fatal("an embedded Redis with --redis-url")
			}
			var out strings.Builder
			d.printWelcome(&out, "127.0.0.1:2808", cfg)
			banner := out.String()
			fill := strings.NewReplacer("{secret}", d.secret, "{token}", d.token)
			for _, want := range tc.want {
				if want = fill.Replace(want); !strings.Contains(banner, want) {
					t.Errorf("banner lacks\n%s", want)
				}
			}
			for _, bad := range tc.never {
				if strings.Contains(banner, bad) {
					t.Errorf("banner holds %q", bad)
				}
			}
			if t.Failed() {
				t.Logf("banner:\n%s", banner)
			}
		})
	}
}
