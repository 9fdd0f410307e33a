#!/usr/bin/env bash
# CPU engine benchmark: Lookalike's Embedder on the CPU backend vs PyTorch CPU,
# same weights (random, shared as safetensors), same threads, same batch, in
# one run on this machine. Prints a table with the ratios (Lookalike / PyTorch
# images per second); raw JSON lines go to $OUT_DIR/results.jsonl.
#
#   bench/cpu/run.sh [--threads 2] [--reps 3] [--rounds 3] [--batches 1,16]
#                    [--models "resnet50 vit_b16 efficientnet_lite0"]
#                    (also available: convnext_tiny swin_tiny)
#   bench/cpu/run.sh --models clip_vit_b32_text --batches 1,64   # text embeddings
#
# Each round runs, per model, PyTorch then Lookalike in fresh processes (one
# per engine and model, so each peak RSS is that model's alone); rounds
# alternate the engines' order so slow drift in machine load hits both.
# OMP_WAIT_POLICY is passed through unchanged to both engines (both use
# libgomp); docs/benchmarks/cpu.md says which value the recorded run used.
# Env: BUILD_DIR (default build), OUT_DIR (default $BUILD_DIR/bench_cpu),
# LOOKALIKE_PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=2
REPS=3
ROUNDS=3
MODELS="resnet50 vit_b16 efficientnet_lite0"
BATCHES=1,16
while (($#)); do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
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
echo "== $(date -u) threads=$THREADS reps=$REPS rounds=$ROUNDS batches=$BATCHES" \
     "cores=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
for m in $MODELS; do
  W="$OUT_DIR/$m.safetensors"
  [ -f "$W" ] || "$PY" bench/cpu/torch_bench.py make-weights --model "$m" --out "$W"
done
run_torch() {
  "$PY" bench/cpu/torch_bench.py time --model "$1" --weights "$OUT_DIR/$1.safetensors" \
      --threads "$THREADS" --batches "$BATCHES" --reps "$REPS" | tee -a "$RESULTS"
}
run_ours() {
  # "<preset>_text": the preset's text tower (EmbedTexts).
  local preset=${1%_text} texts=0
  [ "$preset" = "$1" ] || texts=1
  "$BIN" --preset "$preset" --texts "$texts" --weights "$OUT_DIR/$1.safetensors" \
      --threads "$THREADS" --batches "$BATCHES" --reps "$REPS" | tee -a "$RESULTS"
}
for ((round = 1; round <= ROUNDS; round++)); do
  for m in $MODELS; do
    if ((round % 2)); then run_torch "$m"; run_ours "$m"; else run_ours "$m"; run_torch "$m"; fi
  done
done
echo
echo "ratio: PyTorch time / Lookalike time (median over rounds of per-process medians);"
echo "best ratio: on each engine's fastest call; cpu ratio: on process CPU time per batch."
"$PY" bench/cpu/torch_bench.py table "$RESULTS"
