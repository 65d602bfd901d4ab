#!/usr/bin/env bash
# Image serving: 8, 32 and 100 concurrent downloads of a 700 MB image (curl, to /dev/null),
# pnp-appliance vs nginx (sendfile on) serving the same file in the same run: aggregate MB/s
# and server peak RSS.
source "$(dirname "$0")/lib.sh"
need nginx nginx
need curl curl
build
IMAGE_MB=${IMAGE_MB:-700}
d=$(bench_dir "$IMAGE_MB")
img=c1100-universalk9.17.12.03a.SPA.bin
cat "$d/images/$img" > /dev/null   # both servers read from the page cache
echo "machine: $(machine); image $IMAGE_MB MB"
size=$(stat -c %s "$d/images/$img")
run() { # run URL N -> MB/s; every download must be complete
  local t0 t1; t0=$(date +%s.%N)
  local pids=()
  for i in $(seq "$2"); do curl -s -o /dev/null -w '%{size_download}\n' "$1" > "$d/got.$i" & pids+=($!); done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  for i in $(seq "$2"); do
    [ "$(cat "$d/got.$i")" = "$size" ] || { echo "bench: download $i from $1 incomplete: $(cat "$d/got.$i") of $size bytes" >&2; exit 1; }
  done
  echo "$IMAGE_MB * $2 / ($t1 - $t0)" | bc -l
}
for n in ${CONCURRENCY:-8 32 100}; do
  port=$(free_port); config "$d" "$port"; start_server "$d" "$port"
  ours=$(run "http://127.0.0.1:$port/images/$img" "$n"); ours_rss=$(hwm_kb "$SERVER_PID")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  nport=$(free_port); mkdir -p "$d/nginx"
  cat > "$d/nginx.conf" <<NGX
user root;
worker_processes 2;
pid $d/nginx/nginx.pid;
error_log $d/nginx/error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:$nport; root $d; } }
NGX
  nginx -c "$d/nginx.conf" -g 'daemon off;' & npid=$!; PIDS+=("$npid"); wait_port "$nport"
  theirs=$(run "http://127.0.0.1:$nport/images/$img" "$n")
  nrss=0; for p in $(pgrep -P "$npid") "$npid"; do nrss=$(( nrss + $(hwm_kb "$p") )); done
  kill "$npid"; wait "$npid" 2>/dev/null || true
  printf '%3s downloads: pnp-appliance %7.0f MB/s (peak RSS %6s kB)  nginx sendfile %7.0f MB/s (peak RSS, all processes %6s kB)  ratio %.2f\n' \
    "$n" "$ours" "$ours_rss" "$theirs" "$nrss" "$(echo "$ours / $theirs" | bc -l)"
done
rm -rf "$d"
