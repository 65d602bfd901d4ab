#!/usr/bin/env bash
# Installs what building and testing pnp-appliance need on a fresh Debian machine, when run as
# root with apt: a C compiler and make (the jemalloc allocator is built from C), and for the
# tests real DHCP servers and clients, busybox, Chromium and its WebDriver, chattr and unshare,
# and PostgreSQL.
# Otherwise it says what is missing: the #[ignore]d tests that need them fail, naming it, when
# run (scripts/test.sh runs them as root; .ci/run always). Run by scripts/test.sh and .ci/run.
set -euo pipefail

need_pkgs=()
for pair in "cc:gcc" "make:make" "ip:iproute2" "dhclient:isc-dhcp-client" "dhcpd:isc-dhcp-server" "kea-dhcp4:kea-dhcp4-server" "dnsmasq:dnsmasq-base" "busybox:busybox" "chromium:chromium" "chromedriver:chromium-driver" "chattr:e2fsprogs" "unshare:util-linux"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_pkgs+=("$pkg")
done
# PostgreSQL for the fleet-store tests: Debian keeps initdb and pg_ctl off PATH, and its
# package would create and start a cluster on port 5432; the tests start their own.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_pkgs+=("postgresql")
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /etc/postgresql-common
    [ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  fi
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "install-deps.sh: WARNING: missing ${need_pkgs[*]} and not root with apt: install them (sudo apt-get install ${need_pkgs[*]}); until then the build may fail (gcc, make) and the tests that need them fail" >&2
  fi
fi
