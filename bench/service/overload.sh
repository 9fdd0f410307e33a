#!/usr/bin/env bash
# Overload: lookalike-server (CPU, real EfficientNet-Lite0) at 1x and 2x the
# requests its embedding queue admits, with clients that do not retry
# (--max-attempts 1). Each level gets a fresh server, so its peak RSS (VmHWM)
# is its own. Prints, per level: throughput, shed rate (RESOURCE_EXHAUSTED),
# admitted latency p50/p99, and the server's peak RSS.
#
#   cmake -S . -B build -G Ninja -DLOOKALIKE_BUILD_BENCHMARKS=ON
#   cmake --build build --target lookalike-server lookalike-service-bench
#   bench/service/overload.sh [SECONDS per level, default 20]
#
# Capacity here: QUEUE images (batcher.queue_capacity) = QUEUE / IMAGE_BATCH
# Upsert requests of IMAGE_BATCH images; 1x runs that many clients, 2x twice
# as many. Environment: QUEUE (default 32), IMAGE_BATCH (8), LEVELS ("1 2").
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_LEVEL=${1:-20}
QUEUE=${QUEUE:-32}
IMAGE_BATCH=${IMAGE_BATCH:-8}
LEVELS=${LEVELS:-1 2}
. bench/service/server.sh
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "queue_capacity $QUEUE images, $IMAGE_BATCH images per Upsert, $SECONDS_PER_LEVEL s per level"
printf '%-6s %8s %10s %10s %8s %10s %10s %14s\n' level clients admitted "images/s" "shed %" \
  "p50 ms" "p99 ms" "peak RSS MiB"
base=$((QUEUE / IMAGE_BATCH))
for level in $LEVELS; do
  clients=$((base * level))
  # shellcheck disable=SC2086  # SERVER_FLAGS is a list of flags
  start_server --device cpu --queue-capacity "$QUEUE" --max-images-per-request "$IMAGE_BATCH" \
    ${SERVER_FLAGS:-}
  # (The server re-executes itself in place at start: $SERVER_PID is the one
  # that listens.)
  "$BENCH_BIN" --server "$ADDR" --images "$PHOTOS" --phases upsert_images --max-attempts 1 \
    --concurrency "$clients" --image-batch "$IMAGE_BATCH" --requests 1000000 \
    --seconds "$SECONDS_PER_LEVEL" --json "$WORK/level.json" >"$WORK/bench.log" 2>&1 ||
    { cat "$WORK/bench.log" >&2; exit 1; }
  peak_kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status")
  "$PY" - "$WORK/level.json" "$level" "$clients" "$peak_kib" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))[0]
level, clients, peak_kib = sys.argv[2], sys.argv[3], int(sys.argv[4])
total = r["requests"] + r["shed"] + r["errors"]
shed = 100.0 * r["shed"] / total if total else 0.0
print(f'{level + "x":<6} {clients:>8} {r["requests"]:>10} {r["items"] / r["seconds"]:>10.1f} '
      f'{shed:>8.1f} {r["p50_ms"]:>10.1f} {r["p99_ms"]:>10.1f} {peak_kib / 1024:>14.0f}')
PYEOF
  stop_server
done
