#!/usr/bin/env bash
# Memory of a round once histories are full: 1000 routers whose records already hold
# HISTORY_LIMIT (300) history lines each, as after a day of re-runs, go through the whole
# workflow again (stress, an IMAGE_MB image, time-scale 0.01). BASE_BIN (a build of an earlier
# commit) vs this build, each on a fresh copy of the same state, the same simulator binary for
# both, interleaved REPS times: RSS at start, peak RSS during the round, RSS SETTLE s after it,
# wall time and latency inside the server.
# The base build, once:
#   git worktree add /tmp/base-wt <commit>
#   (cd /tmp/base-wt && CARGO_TARGET_DIR=/tmp/base-target cargo build --release --locked)
#   BASE_BIN=/tmp/base-target/release/pnp-appliance bash bench/history.sh
source "$(dirname "$0")/lib.sh"
BASE_BIN=${BASE_BIN:?set BASE_BIN to a build of the server to compare with, see the top of this script}
need curl curl
build
IMAGE_MB=${IMAGE_MB:-5}
N=1000
echo "machine: $(machine); image $IMAGE_MB MB, $N routers with full histories, stress"
d=$(bench_dir "$IMAGE_MB"); port=$(free_port); config "$d" "$port"
trap 'cleanup; rm -rf "$d"' EXIT
simulate() {
  "$BIN" --config "$d/appliance.toml" simulate --server "http://127.0.0.1:$port" --devices "$N" \
    --serial-prefix H --timeout 1800 --time-scale 0.01 $(sim_compat) | tail -n1 | sed 's/^simulate: //'
}
# One round creates the records (this build; the format is the same for both)...
start_server "$d" "$port"
echo "setup: $(simulate)"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
# ...then each record's history is filled to the cap by repeating its own lines.
python3 - "$d/state/devices" <<'EOF'
import json, os, sys
limit, n = 300, 0
for name in os.listdir(sys.argv[1]):
    if not name.endswith(".json"):
        continue
    path = os.path.join(sys.argv[1], name)
    rec = json.load(open(path))
    h = rec.get("history") or []
    if not h:
        continue
    full = (h * (limit // len(h) + 1))[-limit:]
    rec["logged"] = rec.get("logged", len(h)) + len(full) - len(h)
    rec["history"] = full
    json.dump(rec, open(path, "w"))
    n += 1
print(f"setup: {n} records filled to {limit} history lines")
EOF
mv "$d/state" "$d/state.full"
for rep in $(seq "${REPS:-2}"); do
  for variant in base current; do
    case $variant in base) sbin=$BASE_BIN ;; current) sbin=$BIN ;; esac
    rm -rf "$d/state"; cp -a "$d/state.full" "$d/state"
    "$sbin" --config "$d/appliance.toml" serve > "$d/serve.log" 2>&1 &
    SERVER_PID=$!; PIDS+=("$SERVER_PID"); wait_port "$port"
    sleep 2
    at_start=$(rss_kb "$SERVER_PID")
    out=$(simulate)
    inside=$(inside_server "$port")
    sleep "${SETTLE:-10}"
    echo "$rep $variant: $out; inside: $inside; RSS at start $at_start kB, peak $(hwm_kb "$SERVER_PID") kB, ${SETTLE:-10} s after $(rss_kb "$SERVER_PID") kB; warn lines $(grep -cE ' (WARN|ERROR) ' "$d/serve.log" || true)"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  done
done
