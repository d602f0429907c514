# pongcast — make run (dev server) and make test (whole suite) are all a new
# machine with Go needs.
GO        ?= go
BIN       := bin
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# target with "context deadline exceeded" when a -fuzztime duration ends
# while a worker is busy (golang/go#75804, fixed in Go 1.27); a count has
# no deadline to race. FUZZTIME=30s still works for a timed run.
FUZZTIME  ?= 50000x
BENCHTIME ?= 1s
# The race detector needs cgo (a C compiler); without one, tests still run.
RACE      := $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && echo -race)

.PHONY: all build run test bench lint fuzz clean

all: lint build test

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Dev mode: embedded Redis, a throwaway secret (unless PONGCAST_JWT_SECRET
# is set), a printed token and commands; they use bin/pongctl, so it is
# built too. The shell execs the server, so that Ctrl-C reaches pongcast
# alone of make's children: it exits 0, and make prints no error line (go
# run exits 1 on SIGINT, and make said "Error 1"). make itself still dies
# of the same SIGINT, as it must on Ctrl-C: a shell shows 130 and prints
# nothing.
run:
	@echo "make run: building $(BIN)/pongcast and $(BIN)/pongctl (the first build takes a minute or two)..."
	@$(GO) build -o $(BIN)/ ./cmd/pongcast ./cmd/pongctl && exec $(BIN)/pongcast --dev

# The whole suite with the race detector. Set PONGCAST_TEST_REDIS_URL to use
# a real Redis; the embedded one is used otherwise.
test:
	@[ -n "$(RACE)" ] || echo "make test: no C compiler, so no race detector (install gcc to enable it)"
	$(GO) test $(RACE) -count=1 -timeout 20m ./...

# Go benchmarks of the hot path, then a short pongbench pass against a real
# server (needs Redis; see BENCHMARKS.md for the full workloads).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./protocol ./auth ./hub ./hub/health
	cmd/pongbench/workloads.sh smoke

# gofmt, and go vet for each operating system the server builds on (the
# raw-socket code sits behind build tags).
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for os in linux darwin windows; do echo "go vet GOOS=$$os"; GOOS=$$os $(GO) vet ./... || exit 1; done

# Each fuzz target for FUZZTIME executions (go test runs one target per
# invocation).
fuzz:
	@for pkg in ./protocol ./protocol/wsframe ./auth ./config ./hub ./hub/health; do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
