package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/config"
	"github.com/pongcast/pongcast/protocol"
)

func (e env) publish(ctx context.Context, args []string) error {
	fs := e.flagSet("publish", "publish --exchange <name> [--latency ms] [--status connected|disconnected|error] [flags]")
	exchange := fs.String("exchange", "", "exchange name (required)")
	latency := fs.Float64("latency", 0, "latency in ms, a finite number >= 0 (not given: the pong has no latency field)")
	status := fs.String("status", protocol.StatusConnected, "connected, disconnected or error")
	timestamp := fs.Int64("timestamp", 0, "pong timestamp in Unix ms (0: now)")
	raw := fs.String("raw", "", "publish this payload verbatim instead (for testing validation)")
	// No default from the environment: --help would print a password in it.
	redisURL := fs.String("redis-url", "", "Redis URL (if not given: env PONGCAST_REDIS_URL, else "+config.DefaultRedisURL+")")
	channel := fs.String("channel", e.envOr("PONGCAST_CHANNEL", config.DefaultChannel), "Pub/Sub channel (env PONGCAST_CHANNEL)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, "--exchange gateio"); err != nil {
		return err
	}
	payload := []byte(*raw)
	if *raw == "" {
		if *exchange == "" {
			return usagef("publish: --exchange is required, for example --exchange gateio")
		}
		if _, err := protocol.NormalizeExchange(*exchange); err != nil {
			return usagef("publish: --exchange: %v", err)
		}
		if *latency < 0 || math.IsNaN(*latency) || math.IsInf(*latency, 0) {
			return usagef("publish: --latency must be a finite number >= 0 (ms, for example --latency 45), got %v", *latency)
		}
		switch *status {
		case protocol.StatusConnected, protocol.StatusDisconnected, protocol.StatusError:
		default:
			return usagef("publish: --status must be connected, disconnected or error, got %q", *status)
		}
		ts := *timestamp
		if ts == 0 {
			ts = time.Now().UnixMilli()
		}
		pong := map[string]any{"exchange": *exchange, "timestamp": ts, "status": *status}
		// A latency of 0 is a plausible reading: leave the field out rather
		// than make one up (the server accepts a pong without it).
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "latency" {
				pong["latency"] = *latency
			}
		})
		payload, _ = json.Marshal(pong)
	}
	if *redisURL == "" {
		*redisURL = e.envOr("PONGCAST_REDIS_URL", config.DefaultRedisURL)
	}
	opts, err := config.ParseRedisURL(*redisURL)
	if err != nil {
		return usagef("publish: --redis-url: %v", err)
	}
	opts.DialTimeout = 3 * time.Second
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := client.Publish(ctx, *channel, payload).Result()
	if err != nil {
		return fmt.Errorf("publish to %s: %w", opts.Addr, err)
	}
	fmt.Fprintf(e.stdout, "published %s to %s (%d subscriber(s) of the channel)\n", payload, *channel, n)
	return nil
}
