#!/usr/bin/env bash
# Image downloads over HTTPS beside plain HTTP, from one server with [http] https on, in the
# same run: N concurrent curl downloads of an IMAGE_MB image to /dev/null, each transport in
# turn, ROUNDS times. Prints aggregate MB/s and the server's CPU seconds per GB sent (utime +
# stime from /proc), and the ratios. Plain HTTP is the zero-copy sendfile path; HTTPS goes
# through rustls (ring), which the kernel cannot do for us.
source "$(dirname "$0")/lib.sh"
need curl curl
build
IMAGE_MB=${IMAGE_MB:-200}
ROUNDS=${ROUNDS:-3}
d=$(bench_dir "$IMAGE_MB")
img=c1100-universalk9.17.12.03a.SPA.bin
cat "$d/images/$img" > /dev/null
size=$(stat -c %s "$d/images/$img")
port=$(free_port); tport=$(free_port)
config "$d" "$port"
sed -i -e "0,/^https = false$/s//https = true/" -e "s/^https-listen = .*/https-listen = \"127.0.0.1:$tport\"/" "$d/appliance.toml"
start_server "$d" "$port"; wait_port "$tport"
echo "machine: $(machine); image $IMAGE_MB MB; commit $(cd "$REPO" && git rev-parse --short HEAD)"
cpu() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
run() { # run URL N -> "MB/s cpu-s/GB"; every download must be complete
  local t0 t1 c0 c1 pids=()
  c0=$(cpu); t0=$(date +%s.%N)
  for i in $(seq "$2"); do
    curl -s --cacert "$d/state/tls/ca.pem" -o /dev/null -w '%{size_download}\n' "$1" > "$d/got.$i" & pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N); c1=$(cpu)
  for i in $(seq "$2"); do
    [ "$(cat "$d/got.$i")" = "$size" ] || { echo "bench: download $i from $1 incomplete: $(cat "$d/got.$i") of $size bytes" >&2; exit 1; }
  done
  local hz; hz=$(getconf CLK_TCK)
  echo "$(echo "$IMAGE_MB * $2 / ($t1 - $t0)" | bc -l) $(echo "($c1 - $c0) / $hz / ($IMAGE_MB * $2 / 1024)" | bc -l)"
}
for n in ${CONCURRENCY:-1 8 32}; do
  for r in $(seq "$ROUNDS"); do
    read -r h hc <<<"$(run "http://127.0.0.1:$port/images/$img" "$n")"
    read -r s sc <<<"$(run "https://127.0.0.1:$tport/images/$img" "$n")"
    printf '%3s downloads, round %s: plain HTTP %7.0f MB/s (%.2f CPU-s/GB)  HTTPS %7.0f MB/s (%.2f CPU-s/GB)  HTTPS/HTTP throughput %.2f, CPU per GB %.1fx\n' \
      "$n" "$r" "$h" "$hc" "$s" "$sc" "$(echo "$s / $h" | bc -l)" "$(echo "$sc / ($hc + 0.0001)" | bc -l)"
  done
done
rm -rf "$d"
