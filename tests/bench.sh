#!/usr/bin/env bash
# The pipeline benchmark: starts the real servers (tests/servers.sh), builds the release
# binary, and runs tests/bench.py, which prints the broker's QoS-1 ceiling beside riverwatch's
# throughput, CPU per reading, peak RSS, alert latency and spool drain rate, and writes JSON to
# target/bench/pipeline.json. BENCH_N sets the message count (default 100000).
# The core's criterion benchmarks: cargo bench --bench core
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/servers.sh

cargo build --release --quiet
/usr/bin/python3 tests/bench.py
