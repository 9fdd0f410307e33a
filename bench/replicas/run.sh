#!/usr/bin/env bash
# PostgreSQL-backed vs SQLite-backed collections, and follower lag, on this
# machine (docs/benchmarks/replicas.md). Starts a throwaway PostgreSQL
# (Debian's initdb + pg_ctl on a free loopback port, fsync ON so both
# storages pay a durable commit; as `nobody` when run as root), then:
#   1. index_throughput with sqlite and with the PostgreSQL URI, ROUNDS times,
#      alternating which goes first (the machine is shared: take medians);
#   2. follow_lag: server A ingests at full rate, server B follows and searches
#      (with BASELINE_FOLLOW_LAG=path/to/an/older/follow_lag, that binary too,
#      alternating, on the same database);
#   3. bench/replicas/service.sh on the same database: ingest (vectors and
#      images) and search with one vs two replicas through lookalike-server,
#      and resident memory per vector (skipped with SERVICE=0).
# Needs a build with -DLOOKALIKE_BUILD_BENCHMARKS=ON (build/index/index_throughput,
# build/index/follow_lag, lookalike-server, lookalike-service-bench).
#   bench/replicas/run.sh [BUILD_DIR] [N_ITEMS] [DIM] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} n=${2:-20000} dim=${3:-512} rounds=${4:-3}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
tmp=$(mktemp -d /tmp/lookalike-bench-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then chown nobody "$tmp"; as_pg=(runuser -u nobody --); fi
cleanup() { "${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
"${as_pg[@]}" "$bindir/initdb" -D "$tmp/data" -U lookalike --auth=trust >/dev/null
"${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w \
  -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" start >/dev/null
"${as_pg[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U lookalike bench
uri="postgresql://lookalike@127.0.0.1:$port/bench"

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; PostgreSQL $("$bindir/postgres" --version | awk '{print $3}')"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(sqlite "$uri"); else order=("$uri" sqlite); fi
  for storage in "${order[@]}"; do
    echo "== round $r, $([ "$storage" = sqlite ] && echo sqlite || echo postgresql)"
    "$build/index/index_throughput" /tmp/lookalike_bench_replicas "$n" "$dim" "$storage" | grep upsert
  done
done
echo "== follower lag (load average $(cut -d' ' -f1-3 /proc/loadavg))"
for ((r = 1; r <= rounds; r++)); do
  bins=("$build/index/follow_lag")
  if [ -n "${BASELINE_FOLLOW_LAG:-}" ]; then
    if ((r % 2)); then bins=("$BASELINE_FOLLOW_LAG" "${bins[@]}"); else bins+=("$BASELINE_FOLLOW_LAG"); fi
  fi
  for bin in "${bins[@]}"; do
    echo "$bin: $("$bin" "$uri" "$n" "$dim" 100 2>/dev/null | grep 'follower lag')"
  done
done
if [ "${SERVICE:-1}" != 0 ]; then BUILD_DIR=$build bench/replicas/service.sh "$uri" "$rounds" "$dim"; fi
