#!/usr/bin/env bash
# The one test command: makes sure redis-server is installed, then runs every
# test in the workspace (unit, integration against spawned servers, doc tests,
# README examples).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v "${CACHE_TEST_REDIS_SERVER:-redis-server}" >/dev/null 2>&1; then
    echo "redis-server not found; installing it with apt-get" >&2
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
                echo "error: need root (or sudo) to run apt-get install redis-server" >&2
                exit 1
            fi
        fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
        # The package may start a system service on 6379; the tests never use it.
    else
        echo "error: redis-server is missing and apt-get is not available." >&2
        echo "Install Redis 7 (e.g. 'brew install redis', 'dnf install redis')," >&2
        echo "or set CACHE_TEST_REDIS_SERVER to a redis-server binary." >&2
        exit 1
    fi
fi
# The TLS test makes its certificates with the openssl command.
if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "openssl not found; installing it with apt-get" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi
echo "using $("${CACHE_TEST_REDIS_SERVER:-redis-server}" --version)"

# Where cargo puts the example binaries (it honours CARGO_TARGET_DIR).
examples_dir="${CARGO_TARGET_DIR:-target}/debug/examples"

# Runs an example binary on the server named by REDIS_URL.
run_example() {
    env -u REDIS_CLUSTER_NODES -u REDIS_SENTINELS "$examples_dir/$1"
}

# Starts the gateway on a free port with the settings given (VAR=value ...;
# none: the memory backend); sets gateway_pid and gateway_url.
start_gateway() {
    cargo build -p gateway --locked -q
    env -u DATABASE_URL -u REDIS_URL -u REDIS_CLUSTER_NODES -u REDIS_SENTINELS "$@" GATEWAY_ADDR=127.0.0.1:0 \
        "${CARGO_TARGET_DIR:-target}/debug/gateway" >"$work/gateway.out" 2>&1 &
    gateway_pid=$!
    gateway_url=""
    for _ in $(seq 100); do
        gateway_url="$(sed -n 's/^gateway listening on \(http:[^ ]*\).*/\1/p' "$work/gateway.out")"
        [ -n "$gateway_url" ] && break
        sleep 0.1
    done
}

# Stops the gateway with SIGTERM; fails unless it stopped cleanly.
stop_gateway() {
    kill -TERM "$gateway_pid" 2>/dev/null
    wait "$gateway_pid"
    local code=$?
    cat "$work/gateway.out"
    [ "$code" -eq 0 ] && grep -q "gateway stopped" "$work/gateway.out"
}

# Starts the gateway with the settings given, reads a price, signs in and
# chats over HTTP, checks that /metrics counted what was sent (the cache's
# misses, loads and cached absences, the HTTP requests by route and status),
# and stops it.
gateway_smoke() {
    local setting
    for setting in "$@"; do
        # An empty setting: the deployment it names did not start.
        if [ -z "${setting#*=}" ]; then echo "no deployment: $setting"; return 1; fi
    done
    start_gateway "$@"
    local ok=0
    if [ -n "$gateway_url" ] && python3 "$(dirname "$0")/gateway_smoke.py" "$gateway_url"; then ok=1; fi
    stop_gateway && [ "$ok" -eq 1 ]
}

# Runs a command with its output in example.log and counts it under LABEL;
# on failure prints that output and the logs named in `also_print`.
check() {
    local label="$1"
    shift
    if "$@" >"$work/example.log" 2>&1; then
        echo "$label ... ok"
        examples_passed=$((examples_passed + 1))
    else
        echo "$label ... FAILED"
        cat "$work/example.log" ${also_print:-}
        examples_failed=$((examples_failed + 1))
    fi
}

# Runs gateway_smoke on BACKEND (a label) with the settings after it, and
# counts the outcome.
gateway_example() {
    local backend="$1"
    shift
    check "gateway on $backend (its /metrics checked)" gateway_smoke "$@"
}

# Every command the README and the guide pages show, exactly as written
# (scripts/doc_commands.py; `list` says how each one runs), each counted.
doc_commands() {
    python3 "$(dirname "$0")/doc_commands.py" run | tee "$work/doc_commands.log" || true
    local summary
    summary="$(sed -n 's/^doc commands: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$work/doc_commands.log")"
    local passed="${summary% *}" failed="${summary#* }"
    if [ -z "$summary" ]; then passed=0; failed=1; fi
    examples_passed=$((examples_passed + passed))
    examples_failed=$((examples_failed + failed))
}

# Runs an example on the cluster named by `nodes` (failing when there is none).
cluster_example() {
    [ -n "$nodes" ] && env -u REDIS_URL -u REDIS_SENTINELS REDIS_CLUSTER_NODES="$nodes" \
        "$examples_dir/$1" "${@:2}"
}

# Runs an example behind the Sentinel deployment named by `master` and
# `sentinels` (failing when there is none).
sentinel_example() {
    [ -n "${sentinels:-}" ] && env -u REDIS_URL -u REDIS_CLUSTER_NODES \
        REDIS_SENTINEL_MASTER="$master" REDIS_SENTINELS="$sentinels" "$examples_dir/$1"
}

# The bench's quick run must keep writing its JSON, one entry per case (its
# numbers in a debug build mean nothing; the README's come from a release run).
bench_quick() {
    # Every case (28 standalone, 2 slow-loader) in the JSON, each standalone
    # one with its allocation count; and the typed SET+GET allocating no
    # more than the same pair written by hand (counts do not drift).
    "$examples_dir/bench" --quick --allocs --json "$work/bench.json" \
        && [ "$(grep -c '"name"' "$work/bench.json")" -eq 30 ] \
        && [ "$(grep -c '"allocs_per_op": [0-9]' "$work/bench.json")" -eq 28 ] \
        && python3 - "$work/bench.json" <<'CHECK'
import json, sys
cases = {case["name"]: case for case in json.load(open(sys.argv[1]))["cases"]}
typed, hand = (cases[name]["allocs_per_op"] for name in ("typed_json_c64", "hand_json_c64"))
print(f"allocations per command: typed_json_c64 {typed}, hand_json_c64 {hand}")
sys.exit(0 if typed <= hand else 1)
CHECK
}

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

set +e
cargo test --workspace --all-features --locked "$@" 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e

# Every example must run on the memory backend (the README's own commands,
# run by doc_commands) and on a real Redis. The server listens only on a
# Unix socket in the temp dir, so no port can clash.
examples_passed=0
examples_failed=0
# The examples that run on every backend (price_outage kills its own server).
every_example="quickstart model_prices chat_sequences database_outage tenant_pages cached_functions large_values shared_keys"
if [ "$status" -eq 0 ]; then
    cargo build --examples --all-features --locked -q
    "${CACHE_TEST_REDIS_SERVER:-redis-server}" --port 0 --unixsocket "$work/redis.sock" \
        --save "" --appendonly no --dir "$work" --loglevel warning >/dev/null &
    server_pid=$!
    for _ in $(seq 100); do [ -S "$work/redis.sock" ] && break; sleep 0.05; done
    # The README's commands as written: the examples on the memory backend
    # (price_outage spawns and kills a server of its own), the docs, the
    # gateway and its load generator, the benches.
    doc_commands
    check "example bench --quick" bench_quick
    # The gateway service on the memory backend with no setup, and on the
    # Redis server.
    gateway_example memory
    gateway_example "one server" REDIS_URL="redis+unix://$work/redis.sock"
    for example in $every_example; do
        REDIS_URL="redis+unix://$work/redis.sock" check "example $example on redis+unix" \
            run_example "$example"
    done
    # And on a local 6-node Redis Cluster, named by REDIS_CLUSTER_NODES. The
    # helper keeps it up while its input (a fifo held open here) stays open.
    cargo build -p cache-tests --bin test-cluster --locked -q
    mkfifo "$work/cluster.in"
    "${CARGO_TARGET_DIR:-target}/debug/test-cluster" <"$work/cluster.in" >"$work/cluster.nodes" 2>"$work/cluster.log" &
    cluster_pid=$!
    exec 3>"$work/cluster.in"
    for _ in $(seq 600); do [ -s "$work/cluster.nodes" ] && break; sleep 0.1; done
    nodes="$(head -n 1 "$work/cluster.nodes")"
    also_print="$work/cluster.log"
    for example in $every_example; do
        check "example $example on a cluster" cluster_example "$example"
    done
    check "example bench on a cluster" cluster_example bench --quick
    gateway_example "a cluster" REDIS_CLUSTER_NODES="$nodes"
    exec 3>&-
    wait "$cluster_pid" 2>/dev/null || true
    # And behind Redis Sentinel (a primary, two replicas, three sentinels),
    # named by REDIS_SENTINEL_MASTER and REDIS_SENTINELS.
    cargo build -p cache-tests --bin test-sentinel --locked -q
    mkfifo "$work/sentinel.in"
    "${CARGO_TARGET_DIR:-target}/debug/test-sentinel" <"$work/sentinel.in" >"$work/sentinel.out" 2>"$work/sentinel.log" &
    sentinel_pid=$!
    exec 4>"$work/sentinel.in"
    for _ in $(seq 600); do [ -s "$work/sentinel.out" ] && break; sleep 0.1; done
    read -r master sentinels <"$work/sentinel.out" || true
    also_print="$work/sentinel.log"
    for example in $every_example; do
        check "example $example behind Sentinel" sentinel_example "$example"
    done
    gateway_example "Sentinel" REDIS_SENTINEL_MASTER="$master" REDIS_SENTINELS="$sentinels"
    exec 4>&-
    wait "$sentinel_pid" 2>/dev/null || true
fi

# cargo ends on its last (often empty) doc-test crate; print the grand total.
awk -v ep="$examples_passed" -v ef="$examples_failed" \
    '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p + ep, f + ef }' \
    "$work/test.log"
if [ "$status" -ne 0 ] || [ "$examples_failed" -ne 0 ]; then exit 1; fi
