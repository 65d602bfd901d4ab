#!/usr/bin/env bash
# Soak: 1000 simulated routers through the whole workflow (5 MB image), round after round
# (ROUNDS), against one server with the DHCP responder running on a veth in a namespace created
# here (the routers reach it over the veth). After each round: open file descriptors, threads
# and RSS of the server, measured SETTLE seconds (default 10) after the round, once the
# allocator has handed back what the round freed (jemalloc, 1 s decay). By default rounds 1 and
# 2 add 1000 records each and round 3 re-runs round 2's routers (same serials, factory-fresh
# again), so growth there is what would leak.
source "$(dirname "$0")/lib.sh"
build
N=${ROUTERS:-1000}
netns_pair "pnpk$$"
d=$(bench_dir 5)
config "$d" 8080
sed -i 's/listen = "127.0.0.1:8080"/listen = "0.0.0.0:8080"/' "$d/appliance.toml"
ip netns exec "$S" "$BIN" --config "$d/appliance.toml" serve --interface vs > "$d/serve.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID"); sleep 1
probe() { echo "fds $(ls /proc/"$SERVER_PID"/fd | wc -l), threads $(awk '/^Threads/ {print $2}' /proc/"$SERVER_PID"/status), RSS $(rss_kb "$SERVER_PID") kB (peak $(hwm_kb "$SERVER_PID") kB)"; }
echo "machine: $(machine)"
echo "idle:     $(probe)"
# Each round's routers are serials R<round>00001...; ROUNDS="1 2 2" sends round 2's routers
# through again as factory-fresh ones: no new records, so what grows then is a leak.
for round in ${ROUNDS:-1 2 2}; do
  out=$(ip netns exec "$C" "$BIN" --config "$d/appliance.toml" simulate --server http://198.51.100.1:8080 \
    --devices "$N" --serial-prefix "R$round" --time-scale 0.01 --timeout 1800 $(sim_compat) | tail -n1)
  sleep "${SETTLE:-10}"
  echo "round $round: $out"
  echo "after $round:  $(probe)"
done
echo "server log lines at warn or above: $(grep -cE ' (WARN|ERROR) ' "$d/serve.log" || true)"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
rm -rf "$d"
