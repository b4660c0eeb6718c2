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
echo "using $("${CACHE_TEST_REDIS_SERVER:-redis-server}" --version)"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-features --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo ends on its last (often empty) doc-test crate; print the grand total.
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
