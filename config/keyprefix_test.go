package config

import (
	"maps"
	"strings"
	"testing"
)

func TestKeyPrefix(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string // the prefix; empty when refused
		err  string // the refusal
	}{
		{"default", nil, nil, DefaultKeyPrefix, ""},
		{"from env", map[string]string{"PONGCAST_KEY_PREFIX": "prod:pongcast:"}, nil, "prod:pongcast:", ""},
		{"flag wins", map[string]string{"PONGCAST_KEY_PREFIX": "env:"}, []string{"--key-prefix", "flag:"}, "flag:", ""},
		{"hash tag", nil, []string{"--key-prefix", "{pongcast}:"}, "{pongcast}:", ""},
		{"longest", nil, []string{"--key-prefix", strings.Repeat("p", MaxKeyPrefixLen)}, strings.Repeat("p", MaxKeyPrefixLen), ""},
		{"empty flag", nil, []string{"--key-prefix="}, "",
			"pongcast: --key-prefix (PONGCAST_KEY_PREFIX): must not be empty"},
		{"too long", nil, []string{"--key-prefix", strings.Repeat("p", MaxKeyPrefixLen+1)}, "",
			"pongcast: --key-prefix (PONGCAST_KEY_PREFIX): must be at most 64 bytes, got 65"},
		{"space", map[string]string{"PONGCAST_KEY_PREFIX": "pong cast:"}, nil, "",
			`pongcast: PONGCAST_KEY_PREFIX (--key-prefix): must be printable ASCII without spaces; byte 4 is " "`},
		{"control", nil, []string{"--key-prefix", "pong\ncast:"}, "",
			`pongcast: --key-prefix (PONGCAST_KEY_PREFIX): must be printable ASCII without spaces; byte 4 is "\n"`},
		{"not ascii", nil, []string{"--key-prefix", "pöng:"}, "",
			`pongcast: --key-prefix (PONGCAST_KEY_PREFIX): must be printable ASCII without spaces; byte 1 is "\xc3"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"PONGCAST_JWT_SECRET": secret}
			maps.Copy(env, tc.env)
			cfg, err := load(t, env, tc.args...)
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("err = %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && cfg.KeyPrefix != tc.want:
				t.Fatalf("KeyPrefix = %q, want %q", cfg.KeyPrefix, tc.want)
			}
		})
	}
}

// TestKeyPrefixReportedWithTheRest: a bad prefix is one line of the list,
// among the other bad settings.
func TestKeyPrefixReportedWithTheRest(t *testing.T) {
	_, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret, "PONGCAST_KEY_PREFIX": "a b"},
		"--channel", " ", "--client-rate", "-1")
	for _, want := range []string{
		"pongcast: --channel (PONGCAST_CHANNEL): must not be empty",
		"pongcast: PONGCAST_KEY_PREFIX (--key-prefix): must be printable ASCII without spaces; byte 1 is \" \"",
		"pongcast: --client-rate (PONGCAST_CLIENT_RATE): must be > 0, got -1",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d lines, want 3:\n%v", n, err)
	}
}
