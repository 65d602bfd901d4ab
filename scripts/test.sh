#!/usr/bin/env bash
# Runs every test of pnp-appliance on a fresh machine: installs what the build and the tests need
# (scripts/install-deps.sh), then `cargo test`. Tests that need root and network namespaces, or
# the browser, skip loudly without them, unless PNP_REQUIRE_NETNS=1 / PNP_REQUIRE_BROWSER=1 (set
# by .ci/run), which make them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo test --locked --all-targets "$@"
