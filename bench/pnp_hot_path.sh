#!/usr/bin/env bash
# PnP hot path: wrk POSTs the work request of a FINISHED router to /pnp/WORK-REQUEST (the answer
# is a parsed request, a registry update and a rendered backoff), at 32 and 256 connections.
# Anchor in the same run: nginx answering every POST with a fixed 200 (no application work).
source "$(dirname "$0")/lib.sh"
need wrk wrk
need nginx nginx
build
DURATION=${DURATION:-10}
d=$(bench_dir 1)
port=$(free_port)
config "$d" "$port"
start_server "$d" "$port"
# One router provisioned to FINISHED; its serial is HOT00001.
"$BIN" --config "$d/appliance.toml" simulate --server "http://127.0.0.1:$port" --devices 1 \
  --serial-prefix HOT --time-scale 0.01 --timeout 60 >/dev/null
udi="PID:C1131-8PWB,VID:V01,SN:HOT00001"
body="<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"$udi\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"CiscoPnP-1.0-R1-I1-P1-T1-2\"><deviceId><udi>$udi</udi><hostname>Router</hostname><authRequired>false</authRequired></deviceId></info></pnp>"
# The simulated router talked from its own address (127.1.0.2): bind it to wrk's, so wrk
# measures the router's exchange, not a refused claim.
curl -s -o /dev/null -H 'Content-Type: text/xml' --data "$body" "http://127.0.0.1:$port/pnp/WORK-REQUEST"
"$BIN" --config "$d/appliance.toml" device accept-move HOT00001 >/dev/null
cat > "$d/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "text/xml"
LUA
nport=$(free_port)
mkdir -p "$d/nginx"
cat > "$d/nginx.conf" <<NGX
worker_processes 2;
pid $d/nginx/nginx.pid;
error_log $d/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/nginx;
  server { listen 127.0.0.1:$nport; location / { return 200 "<pnp/>"; } }
}
NGX
nginx -c "$d/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$nport"
echo "machine: $(machine)"
for c in 32 256; do
  ours=$(wrk -t2 -c$c -d${DURATION}s --latency -s "$d/post.lua" "http://127.0.0.1:$port/pnp/WORK-REQUEST")
  anchor=$(wrk -t2 -c$c -d${DURATION}s --latency -s "$d/post.lua" "http://127.0.0.1:$nport/")
  ours_rps=$(echo "$ours" | awk '/Requests\/sec/ {print $2}')
  anchor_rps=$(echo "$anchor" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$ours" | awk '$1=="50%" {print $2}'); p99=$(echo "$ours" | awk '$1=="99%" {print $2}')
  errs=$(echo "$ours" | grep -E "Non-2xx|Socket errors" || true)
  printf 'connections %-4s pnp-appliance %9s req/s (p50 %s, p99 %s)  nginx fixed 200 %9s req/s  ratio %.2f %s\n' \
    "$c" "$ours_rps" "$p50" "$p99" "$anchor_rps" "$(echo "$ours_rps / $anchor_rps" | bc -l)" "$errs"
done
echo "server RSS after: $(rss_kb "$SERVER_PID") kB (peak $(hwm_kb "$SERVER_PID") kB)"
rm -rf "$d"
