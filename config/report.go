package config

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// SettingsError is Load's refusal of the settings: every problem it found,
// one line each, naming the flag and the variable at fault. A command
// exits with status 2 on it, as on a bad command line.
type SettingsError struct {
	Errs []error
}

func (e *SettingsError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *SettingsError) Unwrap() []error { return e.Errs }

// lenientValue stands in for a flag's value while Load reads the command
// line and the environment. A value that does not parse leaves the one
// before in place and is kept, not returned: flag.Parse goes on, and every
// bad setting is reported at once, by Load, in its own words.
type lenientValue struct {
	flag.Value
	refused bool   // the last value given did not parse
	raw     string // that value
}

func (v *lenientValue) Set(s string) error {
	before := v.Value.String()
	v.refused, v.raw = v.Value.Set(s) != nil, s
	if v.refused {
		_ = v.Value.Set(before)
	}
	return nil
}

// IsBoolFlag lets a boolean flag stand alone (--dev), as flag.Parse expects.
func (v *lenientValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// lenientFlags returns a FlagSet with the flags of fs, whose values stand
// for fs's through a lenientValue each.
func lenientFlags(fs *flag.FlagSet) *flag.FlagSet {
	l := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	l.SetOutput(io.Discard)
	fs.VisitAll(func(f *flag.Flag) { l.Var(&lenientValue{Value: f.Value}, f.Name, f.Usage) })
	return l
}

// formProblem says why raw is no value of the kind v holds, and what one
// looks like.
func formProblem(v flag.Value, raw string) string {
	var kind any
	if g, ok := v.(flag.Getter); ok {
		kind = g.Get()
	}
	switch kind.(type) {
	case time.Duration:
		if _, err := strconv.ParseFloat(raw, 64); err == nil {
			return fmt.Sprintf("%q needs a unit, e.g. %ss", raw, raw)
		}
		return fmt.Sprintf("%q is not a duration, e.g. 10s, 500ms or 1m", raw)
	case int:
		return fmt.Sprintf("%q is not a whole number", raw)
	case float64:
		return fmt.Sprintf("%q is not a number", raw)
	case bool:
		return fmt.Sprintf("%q is not true or false", raw)
	}
	return fmt.Sprintf("%q is not valid", raw)
}

// syntaxProblem rewords the error flag.Parse stops at, a command line it
// cannot read, with the flag spelled as the usage spells it.
func syntaxProblem(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + strings.TrimPrefix(name, "-")
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "--" + strings.TrimPrefix(name, "-") + " needs a value"
	}
	return msg
}
