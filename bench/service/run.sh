#!/usr/bin/env bash
# Service benchmark: starts lookalike-server (CPU, real EfficientNet-Lite0
# weights) on a free loopback port with a temporary data dir, runs
# lookalike-service-bench against it (search phases over gRPC and over the
# HTTP/JSON API, in the same run), and stops the server.
#
#   cmake -S . -B build -G Ninja -DLOOKALIKE_BUILD_BENCHMARKS=ON
#   cmake --build build --target lookalike-server lookalike-service-bench
#   bench/service/run.sh [lookalike-service-bench flags, e.g. --concurrency 8 --seconds 30]
#
# Extra server flags: SERVER_FLAGS="--device cuda" bench/service/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/service/server.sh
# shellcheck disable=SC2086  # SERVER_FLAGS is a list of flags
start_server ${SERVER_FLAGS:-}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$BENCH_BIN" --server "$ADDR" --http "$HTTP_ADDR" --server-pids "$SERVER_PID" --images "$PHOTOS" "$@"
