#!/usr/bin/env bash
# Replicas through lookalike-server over gRPC (docs/benchmarks/replicas.md),
# on a PostgreSQL that bench/replicas/run.sh started (its URI is the first
# argument). Each measurement starts fresh servers (real EfficientNet-Lite0
# served; bench/service/server.sh) and runs lookalike-service-bench:
#   1. ingest, SQLite-backed vs PostgreSQL-backed server, ROUNDS times,
#      alternating which goes first: vectors (vectors-only collection of
#      DIM, 100 per request) and images (8 per request, embedded by the
#      server);
#   2. search throughput with one server vs two replicas on the same
#      PostgreSQL (the client spreads its workers over them), alternating,
#      with the servers' CPU time per query;
#   3. resident memory per stored vector: one SQLite-backed server, RSS
#      before and after upserting CAP_N vectors of dim 512 and of dim 768
#      into a Flat (CPU) collection.
#   bench/replicas/service.sh URI [ROUNDS] [DIM]
# Environment: BUILD_DIR (build), SECONDS_PER_PHASE (10), CONCURRENCY (4),
# PRELOAD (20000 vectors searched), CAP_N (100000).
set -euo pipefail
cd "$(dirname "$0")/../.."
uri=$1 rounds=${2:-2} dim=${3:-512}
secs=${SECONDS_PER_PHASE:-10} conc=${CONCURRENCY:-4} preload=${PRELOAD:-20000} cap_n=${CAP_N:-100000}
. bench/service/server.sh
A_PID= B_PID=
stop_all() {
  for pid in $A_PID $B_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  A_PID= B_PID=
  stop_server
}
trap 'stop_all; rm -rf "$WORK"' EXIT
# start NAME [server flags...]: a server whose address and pid land in
# ${NAME}_ADDR and ${NAME}_PID.
start() {
  local name=$1
  shift
  REPLICA=$name start_server "$@"
  printf -v "${name}_ADDR" '%s' "$ADDR"
  printf -v "${name}_PID" '%s' "$SERVER_PID"
  SERVER_PID=
}
bench() { "$BENCH_BIN" --concurrency "$conc" --seconds "$secs" --requests 1000000000 "$@"; }
rate() { sed -n "s/^$1 \+[0-9]\+ \+[0-9.]\+ \+[0-9.]\+ \+\([0-9.]\+\).*/\1/p"; }
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== ingest through lookalike-server (items/s; vectors dim $dim, 100 per request; images 8 per request; $conc clients, $secs s)"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(sqlite "$uri"); else order=("$uri" sqlite); fi
  for storage in "${order[@]}"; do
    label=$([ "$storage" = sqlite ] && echo sqlite || echo postgresql)
    start A --storage "$storage"
    out=$(bench --server "$A_ADDR" --images "$PHOTOS" --dim "$dim" --batch 100 --image-batch 8 \
      --phases upsert_vectors,upsert_images --server-pids "$A_PID")
    echo "round $r $label: vectors $(echo "$out" | rate upsert_vectors) images $(echo "$out" | rate upsert_images)"
    stop_all
  done
done

echo "== search, one server vs two replicas on one PostgreSQL ($preload vectors of dim $dim, Flat, k 10, $conc clients, $secs s)"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(1 2); else order=(2 1); fi
  for n in "${order[@]}"; do
    start A --storage "$uri"
    servers=$A_ADDR pids=$A_PID
    if [ "$n" = 2 ]; then
      start B --storage "$uri"
      servers=$A_ADDR,$B_ADDR pids=$A_PID,$B_PID
    fi
    out=$(bench --server "$servers" --server-pids "$pids" --dim "$dim" --preload "$preload" \
      --phases search_vectors)
    cpu=$(echo "$out" | sed -n 's/.*CPU per request: client \([0-9.]*\) ms, servers \([0-9.]*\) ms/client \1 ms, servers \2 ms/p')
    echo "round $r, $n server(s): $(echo "$out" | rate search_vectors) queries/s; CPU per query: $cpu; load $(cut -d' ' -f1 /proc/loadavg)"
    stop_all
  done
done

echo "== resident memory per vector (SQLite-backed server, Flat on the CPU, $cap_n vectors)"
for d in 512 768; do
  start A
  before=$(rss_kib "$A_PID")
  "$BENCH_BIN" --server "$A_ADDR" --dim "$d" --batch 1000 --concurrency 2 --seconds 600 \
    --requests $((cap_n / 1000)) --phases upsert_vectors --keep >/dev/null
  after=$(rss_kib "$A_PID")
  awk -v d="$d" -v n="$cap_n" -v b="$before" -v a="$after" 'BEGIN {
    per = (a - b) * 1024 / n
    printf "dim %d: RSS %.0f MiB -> %.0f MiB; %.0f bytes per vector (raw floats %d); extrapolated %.2f GiB per million vectors\n",
      d, b / 1024, a / 1024, per, 4 * d, per * 1e6 / 2^30 }'
  stop_all
done
