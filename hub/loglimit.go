package hub

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// logLimiter lets a few lines of one kind through per interval and counts
// the rest, so a flood of bad input cannot flood the log; the next line
// that passes says how many were suppressed.
type logLimiter struct {
	limiter    *rate.Limiter
	suppressed atomic.Int64
}

func newLogLimiter(every time.Duration, burst int) *logLimiter {
	return &logLimiter{limiter: rate.NewLimiter(rate.Every(every), burst)}
}

func (l *logLimiter) log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return // a line not written takes no token from those that are
	}
	if !l.limiter.Allow() {
		l.suppressed.Add(1)
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}
