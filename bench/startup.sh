#!/usr/bin/env bash
# Start-up with a 700 MB image: cold (md5 computed) and warm (md5 from the cache), measured to
# the first answered HELLO; idle RSS after start-up. Anchor: `md5sum` of the same file (the
# floor for the cold start).
source "$(dirname "$0")/lib.sh"
build
IMAGE_MB=${IMAGE_MB:-700}
d=$(bench_dir "$IMAGE_MB")
img="$d/images/c1100-universalk9.17.12.03a.SPA.bin"
cat "$img" > /dev/null
echo "machine: $(machine); image $IMAGE_MB MB (in page cache)"
t0=$(date +%s.%N); md5sum "$img" > /dev/null; t1=$(date +%s.%N)
anchor=$(echo "$t1 - $t0" | bc -l)
for kind in cold warm; do
  [ "$kind" = cold ] && rm -f "$d/state/md5-cache.json"
  port=$(free_port); config "$d" "$port"
  t0=$(date +%s.%N)
  "$BIN" --config "$d/appliance.toml" serve > "$d/serve.log" 2>&1 & SERVER_PID=$!; PIDS+=("$SERVER_PID")
  until curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/pnp/HELLO" 2>/dev/null | grep -q 200; do sleep 0.01; done
  t1=$(date +%s.%N)
  sleep 2
  printf '%s start: %.2f s to first HELLO (md5sum of the file alone: %.2f s, ratio %.2f); idle RSS %s kB\n' \
    "$kind" "$(echo "$t1 - $t0" | bc -l)" "$anchor" "$(echo "($t1 - $t0) / $anchor" | bc -l)" "$(rss_kb "$SERVER_PID")"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
done
rm -rf "$d"
