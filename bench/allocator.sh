#!/usr/bin/env bash
# Allocators side by side: the server built on glibc's malloc (the last commit before jemalloc,
# d51f457) vs jemalloc with the options src/main.rs builds in (1 s decay, background thread) vs
# jemalloc with its default 10 s decay (through _RJEM_MALLOC_CONF), each serving the same stress
# run (1000 routers, an IMAGE_MB image, time-scale 0.01), the same simulator binary for all;
# interleaved, REPS times. Throughput, latency, peak RSS and RSS 3 s after the run.
# The glibc build, once:
#   git worktree add /tmp/glibc-wt d51f457
#   (cd /tmp/glibc-wt && CARGO_TARGET_DIR=/tmp/glibc-target cargo build --release --locked)
#   GLIBC_BIN=/tmp/glibc-target/release/pnp-appliance bash bench/allocator.sh
source "$(dirname "$0")/lib.sh"
GLIBC_BIN=${GLIBC_BIN:?set GLIBC_BIN to a glibc build of the server, see the top of this script}
need curl curl
build
IMAGE_MB=${IMAGE_MB:-5}
echo "machine: $(machine); image $IMAGE_MB MB, 1000 routers, stress"
for rep in $(seq "${REPS:-3}"); do
  for variant in glibc jemalloc-1s jemalloc-10s; do
    d=$(bench_dir "$IMAGE_MB"); port=$(free_port); config "$d" "$port"
    case $variant in
      glibc) sbin=$GLIBC_BIN; conf= ;;
      jemalloc-1s) sbin=$BIN; conf= ;;
      jemalloc-10s) sbin=$BIN; conf="dirty_decay_ms:10000,muzzy_decay_ms:10000" ;;
    esac
    _RJEM_MALLOC_CONF="$conf" "$sbin" --config "$d/appliance.toml" serve > "$d/serve.log" 2>&1 &
    SERVER_PID=$!; PIDS+=("$SERVER_PID"); wait_port "$port"
    out=$("$BIN" --config "$d/appliance.toml" simulate --server "http://127.0.0.1:$port" --devices 1000 \
      --serial-prefix W --timeout 1800 --time-scale 0.01 $(sim_compat) | tail -n1 | sed 's/^simulate: //')
    inside=$(inside_server "$port")
    sleep 3
    echo "$rep $variant: $out; inside: $inside; peak RSS $(hwm_kb "$SERVER_PID") kB, RSS 3 s after $(rss_kb "$SERVER_PID") kB"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$d"
  done
done
