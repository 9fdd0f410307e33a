# Sourced by bench/service/run.sh and overload.sh (from the repository root):
# checks the binaries, prepares weights and photos, and defines
#   start_server [server flags...]   lookalike-server (real EfficientNet-Lite0) on free
#                                    loopback ports (gRPC and HTTP/JSON), data in
#                                    $WORK/data$REPLICA; sets ADDR, HTTP_ADDR, SERVER_PID
#   stop_server
# $WORK is a temp dir removed on exit, with the server.
BUILD_DIR=${BUILD_DIR:-build}
SERVER_BIN=${SERVER_BIN:-$BUILD_DIR/server/lookalike-server}  # another build's server to compare
BENCH_BIN=$BUILD_DIR/bench/service/lookalike-service-bench
PY=.venv/bin/python
for bin in "$SERVER_BIN" "$BENCH_BIN"; do
  [ -x "$bin" ] || { echo "missing $bin (configure with -DLOOKALIKE_BUILD_BENCHMARKS=ON and build it)" >&2; exit 1; }
done
[ -f weights/efficientnet_lite0.safetensors ] || "$PY" tools/prepare_weights.py
PHOTOS=$BUILD_DIR/bench/service/photos
[ -f "$PHOTOS/metadata.csv" ] || "$PY" tools/make_sample_photos.py --out "$PHOTOS" >/dev/null

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
start_server() {
  ADDR=127.0.0.1:$(free_port)
  HTTP_ADDR=127.0.0.1:$(free_port)
  rm -rf "$WORK/data${REPLICA:-}"
  "$SERVER_BIN" --listen "$ADDR" --http-listen "$HTTP_ADDR" --data-dir "$WORK/data${REPLICA:-}" \
    --metrics-listen= --log-level warn \
    --model "efficientnet_lite0=efficientnet_lite0:weights/efficientnet_lite0.safetensors" \
    "$@" >"$WORK/server${REPLICA:-}.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    "$BUILD_DIR/client/lookalike" health --server "$ADDR" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server${REPLICA:-}.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "lookalike-server did not become healthy" >&2
  exit 1
}
