#!/usr/bin/env bash
# DHCP: perfdhcp (Kea's load generator; it acts as a relay, giaddr = its address) with options
# 60 and 124 of an ISR1k, 200 clients, in two network namespaces joined by a veth pair
# (198.51.100.0/24) created here. Against, in the same run: pnp-appliance's responder, ISC dhcpd
# and Kea, both configured with our own `dhcp-config` snippets. Reports completed DORA/s and
# drops at each target rate. Needs root (namespaces).
source "$(dirname "$0")/lib.sh"
need perfdhcp kea-admin
need dhcpd isc-dhcp-server
need kea-dhcp4 kea-dhcp4-server
build
RATES=${RATES:-4000 8000 12000 16000}
PERIOD=${PERIOD:-10}
netns_pair "pnpb$$"
d=$(mktemp -d /tmp/pnp-dhcp.XXXXXX)
cat > "$d/appliance.toml" <<CFG
[http]
listen = "127.0.0.1:8080"
[dhcp]
pool = "198.51.100.10-198.51.100.250"
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
echo "machine: $(machine); perfdhcp and servers share the same cores"
SERVERS=${SERVERS:-ours dhcpd kea}   # e.g. SERVERS=ours to profile our responder alone
want() { [[ " $SERVERS " == *" $1 "* ]]; }
if want ours; then
ip netns exec "$S" "$BIN" --config "$d/appliance.toml" serve --interface vs > "$d/ours.log" 2>&1 &
PIDS+=($!); sleep 1
echo "pnp-appliance responder:"; for r in $RATES; do measure pnp-appliance "$r"; done
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
fi
if want dhcpd; then
"$BIN" --config "$d/appliance.toml" dhcp-config --format isc > "$d/dhcpd.conf"; touch "$d/dhcpd.leases"
ip netns exec "$S" dhcpd -4 -f -q -cf "$d/dhcpd.conf" -lf "$d/dhcpd.leases" -pf "$d/dhcpd.pid" vs > "$d/dhcpd.log" 2>&1 &
PIDS+=($!); sleep 1
echo "ISC dhcpd (our snippet):"; for r in $RATES; do measure "ISC dhcpd" "$r"; done
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
fi
if want kea; then
"$BIN" --config "$d/appliance.toml" dhcp-config --format kea | grep -v '^//' \
  | sed -e 's/"eth1"/"vs"/' -e "s#\"type\": \"memfile\"#\"type\": \"memfile\", \"name\": \"$d/kea-leases.csv\"#" > "$d/kea.json"
KEA_PIDFILE_DIR="$d" KEA_LOCKFILE_DIR="$d" ip netns exec "$S" kea-dhcp4 -c "$d/kea.json" > "$d/kea.log" 2>&1 &
PIDS+=($!); sleep 2
echo "Kea (our snippet):"; for r in $RATES; do measure Kea "$r"; done
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
fi
rm -rf "$d"
