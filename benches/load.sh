#!/usr/bin/env bash
# Load run against real peers, like for like (../shared/bench): nginx,
# HAProxy bare, HAProxy with jwt_verify and a 100 k revocation map, a bare
# pingora 0.9 proxy (benches/bare_proxy.rs) and sessiongate with HS256 and
# ES256 tokens; 10 k distinct sessions, the same 100 k revoked session ids
# imported into the gateway's store, one worker pinned to the server CPU.
#
#   benches/load.sh                 # one round
#   ROUNDS=3 benches/load.sh        # interleaved rounds, medians
#   BENCH_DIR=/path/to/shared/bench benches/load.sh
#   SG_BIN=/path/to/other/sessiongate benches/load.sh   # A/B against another build
#
# Every other bench.sh setting (DURATION, CONNS, PIN, SERVER_CPUS, ...) passes
# through. The peers need: apt-get install -y haproxy nginx-light
# libnginx-mod-http-js wrk socat curl (bench.sh says what is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-$ROOT/../shared/bench}"
export RUN="${RUN:-/tmp/peers/run}"
GW_PORT="${GW_PORT:-18090}"
BARE_PORT="${BARE_PORT:-18095}"
SERVER_CPUS="${SERVER_CPUS:-1}"

[[ -x "$BENCH_DIR/bench.sh" ]] || { echo "no bench harness at $BENCH_DIR (set BENCH_DIR)" >&2; exit 2; }

echo "== building release binaries" >&2
(cd "$ROOT" && cargo build --release --quiet --bin sessiongate --example bare_proxy)
SG="${SG_BIN:-$ROOT/target/release/sessiongate}"
BARE="$ROOT/target/release/examples/bare_proxy"

# Keys, tokens and the revocation list come from the harness (same files as the peers).
# shellcheck source=/dev/null
source "$BENCH_DIR/peers.sh"
mkdir -p "$RUN"
peers_need_tools
peers_tokens

GW_DIR="$RUN/sessiongate"
rm -rf "$GW_DIR"
mkdir -p "$GW_DIR"
cat >"$GW_DIR/gw.toml" <<TOML
# Written by benches/load.sh: like for like with the HAProxy peer.
[listen]
proxy = "127.0.0.1:$GW_PORT"
admin = "127.0.0.1:$((GW_PORT + 1))"
threads = 1

[upstream]
address = "127.0.0.1:${UP_PORT:-18080}"

[token]
sources = ["header:authorization"]
require_exp = true

[[token.keys]]
algorithm = "HS256"
secret = "$(cat "$RUN/hs256.secret")"

[[token.keys]]
algorithm = "ES256"
public_key_file = "$RUN/es256-pub.pem"

[[token.keys]]
algorithm = "RS256"
public_key_file = "$RUN/rs256-pub.pem"

[store]
path = "sessiongate.db"
TOML
"$SG" check-config --config "$GW_DIR/gw.toml" >&2
"$SG" import --config "$GW_DIR/gw.toml" --sessions "$RUN/revoked.txt" --reason "bench preload" >&2

# pingora listeners use SO_REUSEPORT: a stale process on a port would
# silently take part of the load. Refuse to start over one.
for p in "$GW_PORT" "$((GW_PORT + 1))" "$BARE_PORT"; do
    if ss -ltnH "sport = :$p" | grep -q .; then
        echo "port $p is in use: $(ss -ltnpH "sport = :$p")" >&2
        exit 1
    fi
done

# Both servers are started here, pinned like the peers, and stopped by PID.
# (Not through bench.sh's GATEWAY_CMD: bench.sh then charges every extra
# row with the gateway's CPU time instead of finding each row's process.)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap stop_all EXIT
taskset -c "$SERVER_CPUS" "$BARE" "127.0.0.1:$BARE_PORT" "127.0.0.1:${UP_PORT:-18080}" 1 >"$RUN/bare_proxy.out" 2>&1 &
PIDS+=($!)
echo "started pingora-bare pid $! on 127.0.0.1:$BARE_PORT" >&2
taskset -c "$SERVER_CPUS" "$SG" run --config "$GW_DIR/gw.toml" >"$RUN/gateway.out" 2>&1 &
PIDS+=($!)
echo "started sessiongate pid $! on 127.0.0.1:$GW_PORT" >&2
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$((GW_PORT + 1))/readyz" >/dev/null && break
    sleep 0.05
done
curl -sf "http://127.0.0.1:$((GW_PORT + 1))/readyz" >/dev/null || { echo "sessiongate not ready; see $RUN/gateway.out" >&2; exit 1; }

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)" >&2
GATEWAY_NAME=sessiongate \
GATEWAY_ALGS="${GATEWAY_ALGS:-hs256 es256}" \
EXTRA_TARGETS="${EXTRA_TARGETS:-pingora-bare=127.0.0.1:$BARE_PORT}" \
TARGETS="${TARGETS:-upstream nginx haproxy-bare hap-jwt-hs256 hap-jwt-es256 gateway}" \
    "$BENCH_DIR/bench.sh" "127.0.0.1:$GW_PORT"
