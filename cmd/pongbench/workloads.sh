#!/usr/bin/env bash
# Runs the pongbench workloads of BENCHMARKS.md against a fresh pongcast
# (and, for W1, W2 and W4, the old Node.js broadcaster in the same run; for
# W1 and W2 also pongfloor, the minimal Go broadcaster that is the floor).
#
#   cmd/pongbench/workloads.sh W1 [runs]     one workload, 3 runs by default
#   cmd/pongbench/workloads.sh all [runs]    W1-W6
#   cmd/pongbench/workloads.sh smoke         a 5-second pass (make bench)
#   PONGCAST_BIN_OLD=path cmd/pongbench/workloads.sh ab [runs]
#                                             W1-W5 on an older build and on
#                                             this one, alternating, with
#                                             pongfloor for W1 and W2 (no seed)
#
# Needs Redis (PONGCAST_REDIS_URL, default redis://127.0.0.1:6379/0); for
# the seed baseline also Node.js and npm (it installs the seed's packages
# into $SEED_DIR once). Each run starts a new server, so RSS figures start
# from scratch. Reports go to stdout as JSON lines, one per run; progress
# goes to stderr. PONGBENCH_FLAGS adds flags to every pongbench run;
# PONGCAST_BIN runs another pongcast binary (an older build, for an A/B
# comparison in the same run) in place of bin/pongcast.
set -euo pipefail
cd "$(dirname "$0")/../.."

REDIS_URL=${PONGCAST_REDIS_URL:-redis://127.0.0.1:6379/0}
SEED_SRC=${SEED_SRC:-../shared/peers/seed-node}
SEED_DIR=${SEED_DIR:-/tmp/pongcast-seed-node}
PC_PORT=${PC_PORT:-2808}
SEED_PORT=${SEED_PORT:-3001}
FLOOR_PORT=${FLOOR_PORT:-3002}
CHANNEL="pongbench:$$"

go build -o bin/ ./cmd/pongcast ./cmd/pongbench ./cmd/pongfloor
PONGCAST_JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export PONGCAST_JWT_SECRET
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}
trap stop_server EXIT

wait_http() { # url
	for _ in $(seq 1 100); do
		if curl -fs -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "workloads: $1 did not come up" >&2
	return 1
}

wait_port() { # port name
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "workloads: $2 did not come up" >&2
	return 1
}

start_pongcast() {
	"${PONGCAST_BIN:-bin/pongcast}" --addr "127.0.0.1:$PC_PORT" --redis-url "$REDIS_URL" --channel "$CHANNEL" \
		--handshake-rate 0 --max-connections 0 --max-connections-per-user 0 --log-level warn &
	SERVER_PID=$!
	wait_http "http://127.0.0.1:$PC_PORT/readyz"
}

start_seed() {
	if [ ! -d "$SEED_DIR/node_modules" ]; then
		rm -rf "$SEED_DIR" && cp -r "$SEED_SRC" "$SEED_DIR" && chmod -R u+w "$SEED_DIR"
		(cd "$SEED_DIR" && npm ci --silent >/dev/null)
	fi
	PORT=$SEED_PORT REDIS_URL="${REDIS_URL%/0}" CHANNEL="$CHANNEL" node "$SEED_DIR/server.js" >/dev/null &
	SERVER_PID=$!
	# The seed listens before its Redis subscription is confirmed.
	wait_port "$SEED_PORT" seed && sleep 0.3
}

start_floor() {
	bin/pongfloor --addr "127.0.0.1:$FLOOR_PORT" --redis-url "$REDIS_URL" --channel "$CHANNEL" &
	SERVER_PID=$!
	wait_port "$FLOOR_PORT" pongfloor # it listens once subscribed
}

# run LABEL MODE pongbench-args...
run() {
	local label=$1 mode=$2
	shift 2
	if [ "$mode" = floor ]; then
		start_floor
		bin/pongbench --mode seed --url "ws://127.0.0.1:$FLOOR_PORT/" --redis-url "$REDIS_URL" --channel "$CHANNEL" \
			--server-pid "$SERVER_PID" --label "$label/floor" --json ${PONGBENCH_FLAGS:-} "$@"
	elif [ "$mode" = seed ]; then
		start_seed
		bin/pongbench --mode seed --url "ws://127.0.0.1:$SEED_PORT/" --redis-url "$REDIS_URL" --channel "$CHANNEL" \
			--server-pid "$SERVER_PID" --label "$label/seed" --json ${PONGBENCH_FLAGS:-} "$@"
	else
		start_pongcast
		bin/pongbench --url "ws://127.0.0.1:$PC_PORT/ws" --redis-url "$REDIS_URL" --channel "$CHANNEL" \
			--server-pid "$SERVER_PID" --label "$label/pongcast" --json ${PONGBENCH_FLAGS:-} "$@"
	fi
	stop_server
	sleep 2 # let sockets settle between runs
}

workload() { # name runs
	local name=$1 runs=$2
	for i in $(seq 1 "$runs"); do
		echo "workloads: $name run $i of $runs" >&2
		case $name in
		W1)
			run W1 pongcast --clients 1000 --exchanges 1 --rate 50 --duration 20s
			run W1 seed --clients 1000 --rate 50 --duration 20s
			run W1 floor --clients 1000 --rate 50 --duration 20s
			;;
		W2)
			run W2 pongcast --clients 10000 --exchanges 1 --rate 5 --duration 20s
			run W2 seed --clients 10000 --rate 5 --duration 20s
			run W2 floor --clients 10000 --rate 5 --duration 20s
			;;
		W3)
			run W3 pongcast --clients 10000 --exchanges 100 --rate 100 --duration 20s
			;;
		W4)
			run W4-10k pongcast --clients 10000 --rate 0 --hold 30s
			run W4-19k pongcast --clients 19000 --rate 0 --hold 30s
			run W4-10k seed --clients 10000 --rate 0 --hold 30s
			run W4-19k seed --clients 19000 --rate 0 --hold 30s
			;;
		W5)
			run W5 pongcast --clients 10000 --rate 0 --connect-parallel 128
			# The same connects, each owed a snapshot: dial to first pong.
			run W5s pongcast --clients 10000 --exchanges 100 --rate 0 --connect-parallel 128 --snapshot
			;;
		W6)
			go test -run '^$' -bench 'BenchmarkRoute/subscribers=10000$' -benchtime 300x ./hub | grep Benchmark
			;;
		smoke)
			run smoke pongcast --clients 1000 --exchanges 10 --rate 50 --duration 5s
			;;
		ab)
			for build in old new; do
				local bin=bin/pongcast
				if [ "$build" = old ]; then bin=${PONGCAST_BIN_OLD:?set PONGCAST_BIN_OLD to the older pongcast}; fi
				PONGCAST_BIN=$bin run W1-$build pongcast --clients 1000 --exchanges 1 --rate 50 --duration 20s
				PONGCAST_BIN=$bin run W2-$build pongcast --clients 10000 --exchanges 1 --rate 5 --duration 20s
				PONGCAST_BIN=$bin run W3-$build pongcast --clients 10000 --exchanges 100 --rate 100 --duration 20s
				PONGCAST_BIN=$bin run W4-10k-$build pongcast --clients 10000 --rate 0 --hold 30s
				PONGCAST_BIN=$bin run W5-$build pongcast --clients 10000 --rate 0 --connect-parallel 128
			done
			run W1 floor --clients 1000 --rate 50 --duration 20s
			run W2 floor --clients 10000 --rate 5 --duration 20s
			;;
		*)
			echo "workloads: unknown workload $name (W1-W6, all, smoke, ab)" >&2
			exit 2
			;;
		esac
	done
}

what=${1:-smoke}
runs=${2:-3}
if [ "$what" = smoke ]; then runs=1; fi
if ! bin/pongbench --help >/dev/null 2>&1; then :; fi
if [ "$what" = all ]; then
	for w in W1 W2 W3 W4 W5 W6; do workload "$w" "$runs"; done
else
	workload "$what" "$runs"
fi
