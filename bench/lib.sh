#!/usr/bin/env bash
# Shared helpers for the benchmarks: install tools, build, start/stop servers by PID, RSS.
# Every benchmark sends traffic only to loopback or to namespaces it creates itself.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BIN="$REPO/target/release/pnp-appliance"
PIDS=()

need() { # need CMD PACKAGE...
  local cmd=$1; shift
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    echo "bench: installing $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
  fi
}

build() { (cd "$REPO" && cargo build --release --locked -q); }

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ -n "${PG_STOP:-}" ]; then $PG_STOP >/dev/null 2>&1 || true; rm -rf "$PG_DIR"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # wait_port PORT
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listens on $1" >&2; return 1
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# inside_server PORT: how long the server on PORT took to answer PnP exchanges, measured inside
# it (/api/metrics).
inside_server() {
  curl -s "http://127.0.0.1:$1/api/metrics" | python3 -c 'import json,sys; p=json.load(sys.stdin)["pnp"]; print("%d requests, p50 %.2f ms, p99 %.2f ms, max %.0f ms" % (p["requests"], p["p50_ms"], p["p99_ms"], p["max_ms"]))'
}
# commit_latency PORT: how long durable changes took to commit, from /metrics (the
# pnp_store_commit_duration_seconds histogram; quantiles at bucket upper edges).
commit_latency() {
  curl -s "http://127.0.0.1:$1/metrics" | python3 -c '
import sys
b = []
for l in sys.stdin:
    if l.startswith("pnp_store_commit_duration_seconds_bucket"):
        le = l.split("le=\"")[1].split("\"")[0]
        b.append((float("inf") if le == "+Inf" else float(le), float(l.split()[-1])))
if not b or b[-1][1] == 0:
    print("commits: none"); sys.exit()
n = b[-1][1]
q = lambda p: next(le for le, c in b if c >= p * n) * 1000
print("%d commits, p50 <= %.1f ms, p99 <= %.1f ms" % (n, q(0.5), q(0.99)))'
}
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# bench_dir IMAGE_MB: a temporary bench with an image of that size, a tarball, a script and the
# shipped day-0 config; prints its path. The image is random data (not sparse).
bench_dir() {
  local d; d=$(mktemp -d /tmp/pnp-bench.XXXXXX)
  mkdir -p "$d/images" "$d/files" "$d/configs"
  head -c "$(( $1 * 1024 * 1024 ))" /dev/urandom > "$d/images/c1100-universalk9.17.12.03a.SPA.bin"
  head -c 300000 /dev/urandom > "$d/files/guestshell.17.12.03a.tar"
  echo "print('hello')" > "$d/files/pnp_script.py"
  cp "$REPO/configs/default.cfg" "$d/configs/"
  echo "$d"
}

# config DIR PORT [EXTRA]: the shipped appliance.toml on PORT, log level warn, and the
# per-host limits out of reach: a load generator is one host opening hundreds of connections,
# and the soak's 1000 simulated routers share one address.
config() {
  sed -e "s/listen = \"0.0.0.0:8080\"/listen = \"127.0.0.1:$2\"/" -e 's/^level = "info"/level = "warn"/' \
    -e 's/^max-devices = .*/max-devices = 1000000/' \
    -e 's/^new-serials-per-address = .*/new-serials-per-address = 1000000/' \
    -e 's/^connections-per-address = .*/connections-per-address = 1000000/' \
    "$REPO/appliance.toml" > "$1/appliance.toml"
  [ -n "${3:-}" ] && printf '%s\n' "$3" >> "$1/appliance.toml"
  return 0
}

# STORE=postgres: the benches keep device state in a PostgreSQL server of their own
# (Debian's postgresql: initdb + pg_ctl as the postgres user, fsync on, on a free loopback
# port), one new database per server started; otherwise SQLite in the bench's state directory.
PG_PORT=""
start_postgres() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -n1); PG_BIN=$bin
  PG_DIR=$(mktemp -d /tmp/pnp-pg.XXXXXX); chown postgres:postgres "$PG_DIR"
  PG_PORT=$(free_port)
  runuser -u postgres -- "$bin/initdb" --auth=trust -U postgres -E UTF8 -D "$PG_DIR/data" >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -w -D "$PG_DIR/data" -l "$PG_DIR/log" \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR -c max_connections=50" start >/dev/null
  PG_STOP="runuser -u postgres -- $bin/pg_ctl -D $PG_DIR/data -m fast stop"
}
PG_DBS=0
# store_config DIR: appends the [state] table of STORE to DIR's config.
store_config() {
  [ "${STORE:-sqlite}" = postgres ] || return 0
  [ -n "$PG_PORT" ] || start_postgres
  PG_DBS=$((PG_DBS + 1))
  runuser -u postgres -- "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE bench$PG_DBS" >/dev/null
  sed -i "s|^claim-timeout = 120|url = \"postgresql://postgres@127.0.0.1:$PG_PORT/bench$PG_DBS\"\nclaim-timeout = 120|" "$1/appliance.toml"
}

start_server() { # start_server DIR PORT -> sets SERVER_PID
  store_config "$1"
  "$BIN" --config "$1/appliance.toml" serve > "$1/serve.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$2"
}

# sim_compat: the simulator flags that keep a run comparable with builds before simulate
# imitated the hardware's download rate and reload time (and print nothing for those builds,
# which do not know the flags). The simulator is SIM (workflow.sh's SIM_BIN), else BIN.
sim_compat() {
  if "${SIM:-$BIN}" simulate --help 2>/dev/null | grep -q -- --download-kbps; then
    echo "--download-kbps 0 --reload-secs 20"
  fi
}

machine() { echo "$(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -r), $(date -u +%Y-%m-%d)"; }

# netns_pair TAG: two namespaces ${TAG}s / ${TAG}c joined by a veth pair created inside them,
# server vs 198.51.100.1/24, client vc 198.51.100.2/24; removed (with anything still running in
# them) on exit. Sets S and C.
netns_pair() {
  S="${1}s"; C="${1}c"
  ip netns add "$S"; ip netns add "$C"
  trap 'cleanup; ip netns pids "$S" 2>/dev/null | xargs -r kill; ip netns pids "$C" 2>/dev/null | xargs -r kill; ip netns del "$S" 2>/dev/null; ip netns del "$C" 2>/dev/null' EXIT
  ip -n "$S" link add vs type veth peer name vc netns "$C"
  ip -n "$S" addr add 198.51.100.1/24 dev vs
  ip -n "$C" addr add 198.51.100.2/24 dev vc
  for ns in "$S" "$C"; do ip -n "$ns" link set lo up; done
  ip -n "$S" link set vs up; ip -n "$C" link set vc up
}
