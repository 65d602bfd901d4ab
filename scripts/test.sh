#!/usr/bin/env bash
# Runs every test of pnp-appliance on a fresh machine: installs what the build and the tests need
# (scripts/install-deps.sh), then `cargo test`. Tests that need root (network namespaces, chattr,
# a private tmpfs), the DHCP servers and clients, or the browser are #[ignore]d with the reason;
# as root (or with PNP_INCLUDE_IGNORED=1, which .ci/run sets) they run too (--include-ignored),
# and fail, naming what is missing, if it is. Without root they are listed as ignored.
# Arguments are passed to `cargo test` (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
harness=()
if [ "$(id -u)" = 0 ] || [ "${PNP_INCLUDE_IGNORED:-}" = 1 ]; then
  harness=(--include-ignored)
else
  echo "test.sh: not root: the tests that need root, the DHCP tools or the browser are ignored (sudo ./scripts/test.sh runs them)" >&2
fi
cargo test --locked --all-targets "$@" -- "${harness[@]}"
