#!/usr/bin/env bash
# Runs every test of pnp-appliance on a fresh machine: installs what the tests need (real DHCP
# servers and clients, Chromium and its WebDriver), then `cargo test`. Tests that need root and
# network namespaces, or the browser, skip loudly without them, unless PNP_REQUIRE_NETNS=1 /
# PNP_REQUIRE_BROWSER=1 (set by .ci/run), which make them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for pair in "ip:iproute2" "dhclient:isc-dhcp-client" "dhcpd:isc-dhcp-server" "kea-dhcp4:kea-dhcp4-server" "dnsmasq:dnsmasq-base" "busybox:busybox" "chromium:chromium" "chromedriver:chromium-driver"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "test.sh: WARNING: missing ${need_pkgs[*]} and not root with apt: the DHCP tests with real clients and the browser test will skip" >&2
  fi
fi

cargo test --locked --all-targets "$@"
