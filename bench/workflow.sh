#!/usr/bin/env bash
# Whole workflow: `simulate` with 200 and 1000 routers, a 50 MB image (every router downloads
# and md5-checks it), time-scaled 100x: wall time, per-exchange latency p50/p99 as the routers
# see it, server peak RSS. Anchor in the same run: the same routers against the same server with
# no image step (config + files only), so the ratio shows what the image step costs.
source "$(dirname "$0")/lib.sh"
build
IMAGE_MB=${IMAGE_MB:-50}
echo "machine: $(machine)"
for n in ${ROUTERS:-200 1000}; do
  for mode in full no-image; do
    d=$(bench_dir "$IMAGE_MB")
    port=$(free_port)
    config "$d" "$port"
    if [ "$mode" = no-image ]; then
      sed -i '/^\[\[workflow.image\]\]/,/^file = /d' "$d/appliance.toml"
    fi
    start_server "$d" "$port"
    out=$("$BIN" --config "$d/appliance.toml" simulate --server "http://127.0.0.1:$port" --devices "$n" \
      --serial-prefix "W" --time-scale 0.01 --timeout 900 | tail -n1)
    echo "$n routers, $mode: $out; server peak RSS $(hwm_kb "$SERVER_PID") kB"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$d"
  done
done
