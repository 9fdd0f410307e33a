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
#   bench/cpu/run.sh --peers    # also ONNX Runtime and OpenVINO (image models)
#
# Each round runs, per model, PyTorch then Lookalike in fresh processes (one
# per engine and model, so each peak RSS is that model's alone); rounds
# alternate the engines' order so slow drift in machine load hits both.
# --peers adds ONNX Runtime and OpenVINO (bench/cpu/peer_bench.py) from PyPI,
# installed on first use into the benchmark's own virtual environment
# bench/cpu/.venv-peers (pins: bench/cpu/requirements-peers.txt; needs network
# once), never into the project's; each runs the ONNX graph that PyTorch
# exports from the same weights (torch_bench.py export-onnx, opset 17), and
# its first process per model checks its embeddings against PyTorch's (max
# abs difference printed under the table). Engines then rotate: round r
# starts at engine r mod 4. Opt-in, not part of CI.
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
PEERS=0
while (($#)); do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --peers) PEERS=1; shift ;;
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

PEER_VENV=bench/cpu/.venv-peers
PEER_PY=$PEER_VENV/bin/python
if ((PEERS)); then
  if ! [ -x "$PEER_PY" ] || ! cmp -s bench/cpu/requirements-peers.txt "$PEER_VENV/requirements-peers.txt"; then
    python3 -m venv "$PEER_VENV"
    "$PEER_PY" -m pip install -q -r bench/cpu/requirements-peers.txt
    cp bench/cpu/requirements-peers.txt "$PEER_VENV/requirements-peers.txt"
  fi
fi

RESULTS="$OUT_DIR/results.jsonl"
: > "$RESULTS"
echo "== $(date -u) threads=$THREADS reps=$REPS rounds=$ROUNDS batches=$BATCHES peers=$PEERS" \
     "cores=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
echo "== cpu: $(lscpu | sed -n 's/^Model name: *//p')"
echo "== flags: $(grep -o -w -E 'avx2|fma|avx512f|avx512_vnni|avx512_bf16|amx_bf16|amx_int8|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
for m in $MODELS; do
  W="$OUT_DIR/$m.safetensors"
  [ -f "$W" ] || "$PY" bench/cpu/torch_bench.py make-weights --model "$m" --out "$W"
  if ((PEERS)) && ! [ -f "$OUT_DIR/$m.onnx" ]; then
    "$PY" bench/cpu/torch_bench.py export-onnx --model "$m" --weights "$W" \
        --out "$OUT_DIR/$m.onnx" --check "$OUT_DIR/$m.check.npz" 2>/dev/null
  fi
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
run_peer() {  # engine model [check]
  local check=()
  [ -z "${3:-}" ] || check=(--check "$OUT_DIR/$2.check.npz")
  "$PEER_PY" bench/cpu/peer_bench.py --engine "$1" --model "$2" --onnx "$OUT_DIR/$2.onnx" \
      "${check[@]}" --threads "$THREADS" --batches "$BATCHES" --reps "$REPS" | tee -a "$RESULTS"
}
ENGINES=(torch ours)
((PEERS)) && ENGINES=(torch ours onnxruntime openvino)
for ((round = 1; round <= ROUNDS; round++)); do
  for m in $MODELS; do
    n=${#ENGINES[@]}
    for ((i = 0; i < n; i++)); do
      e=${ENGINES[$(((round - 1 + i) % n))]}
      case $e in
        torch) run_torch "$m" ;;
        ours) run_ours "$m" ;;
        *) run_peer "$e" "$m" $( ((round == 1)) && echo check) ;;
      esac
    done
  done
done
echo
echo "ratio: PyTorch time / Lookalike time (median over rounds of per-process medians);"
echo "best ratio: on each engine's fastest call; cpu ratio: on process CPU time per batch."
((PEERS)) && echo "vs best peer: the better of ONNX Runtime and OpenVINO on each measure (median, best call, CPU time)."
"$PY" bench/cpu/torch_bench.py table "$RESULTS"
