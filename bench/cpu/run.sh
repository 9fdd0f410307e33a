#!/usr/bin/env bash
# CPU engine benchmark: Lookalike's Embedder on the CPU backend vs PyTorch CPU,
# same weights (random, shared as safetensors), same threads, same batch, in
# one run on this machine. Prints a table with the ratio (Lookalike / PyTorch
# images per second); raw JSON lines go to $OUT_DIR/results.jsonl.
#
#   bench/cpu/run.sh [--threads 2] [--reps 5] [--models "resnet50 vit_b16 efficientnet_lite0"]
#
# Env: BUILD_DIR (default build), OUT_DIR (default $BUILD_DIR/bench_cpu).
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=2
REPS=5
MODELS="resnet50 vit_b16 efficientnet_lite0"
BATCHES=1,16
while (($#)); do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BUILD_DIR=${BUILD_DIR:-build}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/bench_cpu}
PY=${LOOKALIKE_PYTHON:-.venv/bin/python}
mkdir -p "$OUT_DIR"

cmake -S . -B "$BUILD_DIR" -G Ninja -DLOOKALIKE_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$BUILD_DIR" --target lookalike_cpu_embedder_bench -j "${JOBS:-2}"
BIN="$BUILD_DIR/bench/cpu/lookalike_cpu_embedder_bench"

RESULTS="$OUT_DIR/results.jsonl"
: > "$RESULTS"
echo "== $(date -u) threads=$THREADS reps=$REPS batches=$BATCHES ($(nproc) cores)"
for m in $MODELS; do
  W="$OUT_DIR/$m.safetensors"
  [ -f "$W" ] || "$PY" bench/cpu/torch_bench.py make-weights --model "$m" --out "$W"
  # One process per engine and model, so each peak RSS is that model's alone.
  "$PY" bench/cpu/torch_bench.py time --model "$m" --weights "$W" --threads "$THREADS" \
      --batches "$BATCHES" --reps "$REPS" | tee -a "$RESULTS"
  "$BIN" --preset "$m" --weights "$W" --threads "$THREADS" --batches "$BATCHES" \
      --reps "$REPS" | tee -a "$RESULTS"
done
echo
"$PY" bench/cpu/torch_bench.py table "$RESULTS"
