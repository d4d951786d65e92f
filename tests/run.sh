#!/usr/bin/env bash
# Runs every test of riverwatch, the real-server ones included: starts the servers
# (tests/servers.sh), runs `cargo test` with their addresses in RIVERWATCH_TEST_* variables, and
# stops them by PID on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/servers.sh

cargo test --all-targets "$@"
