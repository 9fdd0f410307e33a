#!/usr/bin/env bash
# oneDNN 3 vs the system oneDNN 2.6 on the CPU backend's hot shapes
# (bench/cpu/dnnl_version_bench.cc; docs/benchmarks/cpu.md, "oneDNN 3").
#
#   bench/cpu/onednn3_eval.sh [--rounds 5] [--reps 5] [--threads 2]
#
# Downloads Intel's CPU-only, GNU-OpenMP build of oneDNN 3.2 from PyPI
# (onednn-cpu-gomp + onednn-devel-cpu-gomp 2023.2.0, --no-deps) into a scratch
# directory ($SCRATCH, default build/onednn3; never into a Python
# environment), compiles the benchmark against it and against the system's
# libdnnl-dev, and runs the two binaries in alternating order, one fresh
# process each per round. Prints per shape the median over rounds of each
# process's median wall and CPU time, and the ratio 2.6 / 3.x (> 1: 3.x faster).
# Opt-in (network, minutes), not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=5
REPS=5
THREADS=2
while (($#)); do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
SCRATCH=${SCRATCH:-build/onednn3}
PY=${LOOKALIKE_PYTHON:-.venv/bin/python}
VER=2023.2.0
mkdir -p "$SCRATCH/whl" "$SCRATCH/root"
if ! [ -f "$SCRATCH/root/.done" ]; then
  "$PY" -m pip download -q --no-deps -d "$SCRATCH/whl" "onednn-cpu-gomp==$VER" \
      "onednn-devel-cpu-gomp==$VER"
  for w in "$SCRATCH"/whl/*.whl; do "$PY" -m zipfile -e "$w" "$SCRATCH/root"; done
  touch "$SCRATCH/root/.done"
fi
INC=$SCRATCH/root/onednn_devel_cpu_gomp-$VER.data/data/include
LIB=$(realpath "$SCRATCH/root/onednn_cpu_gomp-$VER.data/data/lib")
# The wheel stores the library's symlinks as copies; link against the soname.
[ -e "$LIB/libdnnl.so" ] || ln -sf libdnnl.so.3 "$LIB/libdnnl.so"
g++ -O2 -std=c++17 -I. bench/cpu/dnnl_version_bench.cc -ldnnl -o "$SCRATCH/bench_2x"
g++ -O2 -std=c++17 -I. -I"$INC" bench/cpu/dnnl_version_bench.cc -L"$LIB" -ldnnl \
    -Wl,-rpath,"$LIB" -o "$SCRATCH/bench_3x"
RESULTS=$SCRATCH/results.jsonl
: > "$RESULTS"
echo "== $(date -u) threads=$THREADS reps=$REPS rounds=$ROUNDS cores=$(nproc)" \
     "load=$(cut -d' ' -f1-3 /proc/loadavg) OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
echo "== cpu: $(lscpu | sed -n 's/^Model name: *//p')"
for ((round = 1; round <= ROUNDS; round++)); do
  order=(bench_2x bench_3x)
  ((round % 2)) || order=(bench_3x bench_2x)
  for b in "${order[@]}"; do
    OMP_NUM_THREADS=$THREADS "$SCRATCH/$b" --reps "$REPS" >> "$RESULTS"
  done
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$RESULTS" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["shape"], {}).setdefault(r["onednn"][0], []).append(r)
print(f"{'shape':<34}{'2.x ms':>9}{'3.x ms':>9}{'wall ratio':>11}{'2.x cpu':>9}{'3.x cpu':>9}"
      f"{'cpu ratio':>10}{'rounds':>7}")
for shape, v in runs.items():
    a, b = v["2"], v["3"]
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"{shape:<34}{med(a, 'ms'):>9.2f}{med(b, 'ms'):>9.2f}{med(a, 'ms') / med(b, 'ms'):>10.2f}x"
          f"{med(a, 'cpu_ms'):>9.2f}{med(b, 'cpu_ms'):>9.2f}"
          f"{med(a, 'cpu_ms') / med(b, 'cpu_ms'):>9.2f}x{min(len(a), len(b)):>7}")
print(f"versions: {v['2'][0]['onednn']} (system) vs {v['3'][0]['onednn']} (PyPI onednn-cpu-gomp)")
EOF
