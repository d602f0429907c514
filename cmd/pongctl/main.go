// Command pongctl is pongcast's admin CLI: it issues and verifies tokens,
// publishes pongs as a connector would, and watches a server as a client.
//
//	pongctl token issue --sub alice --exchanges gateio,binance --ttl 24h
//	pongctl token verify <jwt>
//	pongctl token revoke --sub alice
//	pongctl publish --exchange gateio --latency 45 --status connected
//	PONGCAST_TOKEN=<jwt> pongctl watch --url ws://localhost:2808 --exchanges gateio
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9/logging"

	"github.com/pongcast/pongcast/protocol"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the operation failed (invalid token, Redis down, ...)
	exitUsage = 2 // the command line is wrong
)

const usage = `Usage: pongctl <command> [flags]

Commands:
  token issue    sign a token (--sub, --exchanges, --ttl)
  token verify   check a token and print its claims (exit 1 if invalid)
  token revoke   revoke tokens on every server (--jti, --sub [--before], or the token)
  publish        publish a pong to Redis as a connector would
  watch          connect to a pongcast server and print pongs as they come

Keys and Redis come from the same PONGCAST_* variables as the server's
(PONGCAST_JWT_SECRET, PONGCAST_JWT_SECRET_FILE, PONGCAST_REDIS_URL, ...).
watch takes its token from PONGCAST_TOKEN when --token is not given
(a flag's value shows in ps, a variable's does not).

Exit codes: 0 done, 1 failed (invalid token, Redis down, ...), 2 wrong command line.
Run 'pongctl <command> --help' for a command's flags.
`

const tokenUsage = `Usage: pongctl token <subcommand> [flags]

Subcommands:
  issue    sign a token and print it on stdout:
             pongctl token issue --sub alice --exchanges gateio,binance --ttl 24h
  verify   check a token and print its claims (exit 1 if invalid):
             pongctl token verify <jwt>
  revoke   revoke tokens on every server sharing the Redis:
             pongctl token revoke --jti <id>
             pongctl token revoke --sub alice [--before 2026-12-01T13:00:00Z]

Run 'pongctl token <subcommand> --help' for its flags.
`

func main() {
	// go-redis logs its own dial failures (with a pool.go prefix) on
	// stderr; pongctl says what failed once, in its own words.
	logging.Disable()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is the environment seen by a command, injectable for tests.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "token":
		if len(rest) == 0 {
			fmt.Fprint(stderr, "pongctl token: want 'issue', 'verify' or 'revoke'\n\n"+tokenUsage)
			return exitUsage
		}
		if isHelp(rest[0]) {
			fmt.Fprint(stdout, tokenUsage)
			return exitOK
		}
		switch rest[0] {
		case "issue":
			err = e.tokenIssue(rest[1:])
		case "verify":
			err = e.tokenVerify(rest[1:])
		case "revoke":
			err = e.tokenRevoke(ctx, rest[1:])
		default:
			fmt.Fprintf(stderr, "pongctl token: unknown subcommand %q (want issue, verify or revoke)\n", rest[0])
			return exitUsage
		}
	case "publish":
		err = e.publish(ctx, rest)
	case "watch":
		err = e.watch(ctx, rest)
	default:
		fmt.Fprintf(stderr, "pongctl: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "pongctl:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "pongctl:", err)
		return exitFail
	}
}

// isHelp reports whether arg asks for help, as the flag package's -h and
// -help (with one dash or two) do at the level of a subcommand's flags.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// usageError marks a wrong command line (exit 2) as opposed to a failed
// operation (exit 1).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// flagSet makes a FlagSet whose parse errors count as usage errors.
func (e env) flagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("pongctl "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pongctl %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. Asked for help, it prints the usage on stdout
// and returns flag.ErrHelp (exit 0); on a wrong flag it prints the usage on
// stderr and returns a usageError, which run prints once, last.
func (e env) parse(fs *flag.FlagSet, args []string) error {
	// The flag package would print the error and the usage itself, both on
	// one stream whichever the case: keep it quiet and print them here.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(e.stdout)
		fs.Usage()
		return err
	}
	fs.SetOutput(e.stderr)
	fs.Usage()
	fmt.Fprintln(e.stderr)
	return usageError{commandOf(fs) + ": " + err.Error()}
}

// commandOf names fs's command as the messages do: "token issue".
func commandOf(fs *flag.FlagSet) string { return strings.TrimPrefix(fs.Name(), "pongctl ") }

// noArgs refuses what the flags left over: these commands take every value
// after a flag, and a stray word is most likely one whose flag was forgotten.
func noArgs(fs *flag.FlagSet, example string) error {
	if fs.NArg() == 0 {
		return nil
	}
	return usagef("%s: unexpected argument %q: every value goes after its flag, as in %s", commandOf(fs), fs.Arg(0), example)
}

// exchangeList splits a comma-separated --exchanges value and normalises
// each name by the server's own rule, so that a name the server would refuse
// is refused here, with the rule, rather than mended into another name
// ("gate io" is not "gateio"). Spaces around a comma and empty items are
// let go: they name nothing.
func exchangeList(cmd, value string) ([]string, error) {
	var names []string
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, err := protocol.NormalizeExchangeOrWildcard(item)
		if err != nil {
			return nil, usagef("%s: --exchanges: %s (for example --exchanges gateio,binance, or '*' for all)",
				cmd, strings.TrimPrefix(err.Error(), "protocol: "))
		}
		names = append(names, name)
	}
	return names, nil
}

// envOr returns the variable's value, or def when it is unset.
func (e env) envOr(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}
