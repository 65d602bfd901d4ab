#!/usr/bin/env bash
# Whole workflow: `simulate` with 200 and 1000 routers, a 50 MB image (every router downloads
# and md5-checks it): wall time, per-exchange latency p50/p99, server peak RSS.
#
# Two regimes:
# * stress (ROUTERS): time-scaled 100x and routers answer every job at once, so each of them
#   polls again the moment it gets its bye; the server is saturated and latency is queueing.
#   Anchor in the same run: the same routers with no image step (config + files only).
# * paced (PACED_ROUTERS): real time, each router taking 2 s ± 50 % to carry out a job
#   (`--command-secs 2 --jitter 0.5`) as an ISR1k's CLI does, powered on over 30 s
#   (`--boot-spread 30`), the server's backoffs as configured.
# * lockstep (with paced, unless LOCKSTEP is set empty): the same without jitter or spread, so
#   all routers send each request at the same moment: the worst burst, bounded by throughput.
# * contended (with paced, unless CONTENDED is set empty): paced with the simulator at normal
#   priority.
# * paced-no-image (with paced, when PACED_NO_IMAGE is set): paced without the image step, so
#   the 50 GB of downloads do not compete with the store for the 2 cores (PACED_IMAGE= skips
#   the paced run with the image).
# STORE=postgres (bench/lib.sh) runs the servers on a PostgreSQL of their own.
# Each router's copy opens a connection of its own (the simulator's default since 2026-12-02),
# so images and files go through the zero-copy path on the server's download threads;
# SIM_ARGS=--copy-on-pnp-connection reuses the PnP connection, where hyper serves them on the
# threads that answer PnP (what every run before 2026-12-02 measured, BENCHMARKS.md).
# SIM_BIN=PATH drives the servers with another build's simulator (an older server with
# today's simulator, so both see the same routers).
# Latency is reported twice: as the routers see it (simulate) and inside the server
# (/api/metrics: request in -> answer ready), since the simulator shares the same 2 cores.
# The simulator runs at nice SIM_NICE (19 by default) in paced and lockstep: real routers bring
# their own CPUs, while 1000 emulated ones receiving and md5-checking 50 GB take ~1.4 of our 2
# cores and, at equal priority, make the server wait for a CPU (the contended run shows it).
source "$(dirname "$0")/lib.sh"
need curl curl
build
IMAGE_MB=${IMAGE_MB:-50}
SIM=${SIM_BIN:-$BIN}
echo "machine: $(machine)"
run_one() { # run_one ROUTERS MODE SIMULATE-ARGS...
  local n=$1 mode=$2; shift 2
  local d port out inside
  d=$(bench_dir "$IMAGE_MB")
  port=$(free_port)
  config "$d" "$port"
  case "$mode" in *no-image)
    sed -i '/^\[\[workflow.image\]\]/,/^file = /d' "$d/appliance.toml" ;;
  esac
  start_server "$d" "$port"
  # Downloads unthrottled and 20 s reloads, as the simulator had them before it imitated the
  # hardware's 600 KB/s and 8 min: the bench measures the server, and stays comparable.
  out=$(nice -n "$NICE" "$SIM" --config "$d/appliance.toml" simulate --server "http://127.0.0.1:$port" --devices "$n" \
    --serial-prefix "W" --timeout 1800 $(sim_compat) ${SIM_ARGS:-} "$@" | tail -n1)
  inside="$(inside_server "$port"); $(commit_latency "$port")"
  echo "$n routers, $mode (simulator at nice $NICE): $out; inside the server: $inside; server peak RSS $(hwm_kb "$SERVER_PID") kB"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$d"
}
NICE=0
for n in ${ROUTERS-200 1000}; do
  run_one "$n" full --time-scale 0.01
  run_one "$n" no-image --time-scale 0.01
done
for n in ${PACED_ROUTERS-1000}; do
  NICE=${SIM_NICE:-19}
  if [ -n "${PACED_IMAGE-1}" ]; then
    run_one "$n" paced --time-scale 1 --command-secs 2 --jitter 0.5 --boot-spread 30
  fi
  if [ -n "${PACED_NO_IMAGE-}" ]; then
    run_one "$n" paced-no-image --time-scale 1 --command-secs 2 --jitter 0.5 --boot-spread 30
  fi
  if [ -n "${LOCKSTEP-1}" ]; then run_one "$n" lockstep --time-scale 1 --command-secs 2; fi
  NICE=0
  if [ -n "${CONTENDED-1}" ]; then
    run_one "$n" contended --time-scale 1 --command-secs 2 --jitter 0.5 --boot-spread 30
  fi
done
