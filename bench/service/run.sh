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
BUILD_DIR=${BUILD_DIR:-build}
SERVER_BIN=$BUILD_DIR/server/lookalike-server
BENCH_BIN=$BUILD_DIR/bench/service/lookalike-service-bench
PY=.venv/bin/python
for bin in "$SERVER_BIN" "$BENCH_BIN"; do
  [ -x "$bin" ] || { echo "missing $bin (configure with -DLOOKALIKE_BUILD_BENCHMARKS=ON and build it)" >&2; exit 1; }
done
[ -f weights/efficientnet_lite0.safetensors ] || "$PY" tools/prepare_weights.py
PHOTOS=$BUILD_DIR/bench/service/photos
[ -f "$PHOTOS/metadata.csv" ] || "$PY" tools/make_sample_photos.py --out "$PHOTOS" >/dev/null

WORK=$(mktemp -d)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
HTTP_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SERVER_BIN" --listen "$ADDR" --data-dir "$WORK/data" --metrics-listen= --log-level warn \
  --http-listen "127.0.0.1:$HTTP_PORT" \
  --model "efficientnet_lite0=efficientnet_lite0:weights/efficientnet_lite0.safetensors" \
  ${SERVER_FLAGS:-} >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
cleanup() {
  kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  "$BUILD_DIR/client/lookalike" health --server "$ADDR" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.2
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$BENCH_BIN" --server "$ADDR" --http "127.0.0.1:$HTTP_PORT" --images "$PHOTOS" "$@"
