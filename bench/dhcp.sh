#!/usr/bin/env bash
# DHCP: perfdhcp (Kea's load generator; it acts as a relay, giaddr = its address) with options
# 60 and 124 of an ISR1k, 200 clients, in two network namespaces joined by a veth pair
# (198.51.100.0/24) created here. Against, in the same run: pnp-appliance's responder, ISC dhcpd
# and Kea, both configured with our own `dhcp-config` snippets. Reports completed DORA/s and
# drops at each target rate, then the same from bench/dhcp_load.rs, a lean generator. Needs root
# (namespaces).
source "$(dirname "$0")/lib.sh"
need perfdhcp kea-admin
need dhcpd isc-dhcp-server
need kea-dhcp4 kea-dhcp4-server
build
(cd "$REPO" && cargo build --release --locked -q --example dhcp_load)
LOAD="$REPO/target/release/examples/dhcp_load"
RATES=${RATES:-4000 8000 12000 16000}
PERIOD=${PERIOD:-10}
netns_pair "pnpb$$"
d=$(mktemp -d /tmp/pnp-dhcp.XXXXXX)
cat > "$d/appliance.toml" <<CFG
[http]
listen = "127.0.0.1:8080"
[dhcp]
pool = "198.51.100.10-198.51.100.250"
# A load generator is 200 clients asking thousands of times a second: the flood limits, which
# exist to stop exactly that, are put out of reach to measure the responder itself.
new-client-offers = 1000000
offers-per-client = 1000000
[dhcp.option43]
server = "198.51.100.1"
[log]
level = "warn"
CFG
PERF=(-4 -l 198.51.100.2 -R 200 -p "$PERIOD" -o 60,636973636f706e70 -o 124,000000090b0a43313133312d38505742)
# Datagrams the kernel dropped because a UDP socket's receive buffer was full, in namespace $1.
rcvbuf_errors() { ip netns exec "$1" awk '/^Udp:/ && $2 ~ /^[0-9]+$/ {print $6}' /proc/net/snmp; }
measure() { # measure NAME RATE
  local s0 c0; s0=$(rcvbuf_errors "$S"); c0=$(rcvbuf_errors "$C")
  local out; out=$(ip netns exec "$C" timeout $((PERIOD + 20)) perfdhcp "${PERF[@]}" -r "$2" 198.51.100.1 2>&1 || true)
  local rate sent drops
  rate=$(echo "$out" | awk '/^Rate:/ {print $2; exit}')
  sent=$(echo "$out" | awk '/^sent packets:/ {s+=$3} END {print s+0}')
  drops=$(echo "$out" | awk '/^drops:/ {d+=$2} END {print d+0}')
  # Where the losses happened: the server's socket overflowing (the server too slow) or
  # perfdhcp's own (the load generator too slow to read its answers).
  printf '  %-14s target %6s/s: %8.0f DORA/s completed, %s of %s packets dropped (%.1f %%); overflowed: server socket %s, perfdhcp socket %s\n' \
    "$1" "$2" "${rate:-0}" "$drops" "$sent" "$(echo "100 * $drops / ($sent + 0.000001)" | bc -l)" \
    "$(( $(rcvbuf_errors "$S") - s0 ))" "$(( $(rcvbuf_errors "$C") - c0 ))"
}
# The same rate from bench/dhcp_load.rs (a lean generator: one thread, 4 MiB receive buffer),
# so that a server's limit shows where perfdhcp's own is reached first.
measure_lean() { # measure_lean NAME RATE
  local s0 c0; s0=$(rcvbuf_errors "$S"); c0=$(rcvbuf_errors "$C")
  local out; out=$(ip netns exec "$C" timeout $((PERIOD + 20)) "$LOAD" --local 198.51.100.2 --server 198.51.100.1 \
    --clients 200 --period "$PERIOD" --rate "$2" 2>&1 || true)
  printf '  %-14s lean generator, %s; overflowed: server socket %s, generator socket %s\n' "$1" "$out" \
    "$(( $(rcvbuf_errors "$S") - s0 ))" "$(( $(rcvbuf_errors "$C") - c0 ))"
}
echo "machine: $(machine); load generator and servers share the same cores"
SERVERS=${SERVERS:-ours dhcpd kea}   # e.g. SERVERS=ours to profile our responder alone
start() { # start KIND: a fresh server of that kind, with no lease yet (each generator's 200
          # clients need 200 of the pool's 241 addresses)
  case $1 in
    ours)
      rm -rf "$d/state"
      ip netns exec "$S" "$BIN" --config "$d/appliance.toml" serve --interface vs >> "$d/ours.log" 2>&1 &
      PIDS+=($!); sleep 1 ;;
    dhcpd)
      "$BIN" --config "$d/appliance.toml" dhcp-config --format isc > "$d/dhcpd.conf"; : > "$d/dhcpd.leases"
      rm -f "$d/dhcpd.leases~"
      ip netns exec "$S" dhcpd -4 -f -q -cf "$d/dhcpd.conf" -lf "$d/dhcpd.leases" -pf "$d/dhcpd.pid" vs >> "$d/dhcpd.log" 2>&1 &
      PIDS+=($!); sleep 1 ;;
    kea)
      "$BIN" --config "$d/appliance.toml" dhcp-config --format kea | grep -v '^//' \
        | sed -e 's/"eth1"/"vs"/' -e "s#\"type\": \"memfile\"#\"type\": \"memfile\", \"name\": \"$d/kea-leases.csv\"#" > "$d/kea.json"
      rm -f "$d"/kea-leases.csv*
      KEA_PIDFILE_DIR="$d" KEA_LOCKFILE_DIR="$d" ip netns exec "$S" kea-dhcp4 -c "$d/kea.json" >> "$d/kea.log" 2>&1 &
      PIDS+=($!); sleep 2 ;;
  esac
}
stop() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; }
declare -A LABEL=([ours]=pnp-appliance [dhcpd]="ISC dhcpd" [kea]=Kea)
for kind in $SERVERS; do
  for gen in ${GENERATORS:-perfdhcp lean}; do   # e.g. GENERATORS=lean
    start "$kind"
    echo "${LABEL[$kind]}, $gen:"
    for r in $RATES; do
      if [ "$gen" = lean ]; then measure_lean "${LABEL[$kind]}" "$r"; else measure "${LABEL[$kind]}" "$r"; fi
    done
    stop
  done
done
rm -rf "$d"
