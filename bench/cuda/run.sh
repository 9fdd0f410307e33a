#!/usr/bin/env bash
# Runs every CUDA benchmark and its peer in one session on one GPU, writing
# JSON lines to OUT (default bench/cuda/results/<date>), then a summary table.
#   bench/cuda/run.sh [BUILD_DIR] [OUT]
# Build first:
#   cmake -S . -B build -G Ninja -DLOOKALIKE_CUDA_ARCHITECTURES=90 \
#     -DLOOKALIKE_BUILD_SERVER=OFF -DLOOKALIKE_BUILD_BENCHMARKS=ON
#   cmake --build build --target cuda_attention_bench cuda_conv_bench cuda_model_bench
# PYTHON (default python3) needs torch with CUDA; timm, torchvision and
# efficientnet_lite_pytorch for the model peers.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
OUT=${2:-bench/cuda/results/$(date -u +%Y%m%dT%H%M%SZ)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1 || true

"$BUILD/bench/cuda/cuda_attention_bench" --batch 1,8,32,256 | tee "$OUT/attention.jsonl"
"$PY" bench/cuda/peer_attention.py --batch 1,8,32,256 | tee -a "$OUT/attention.jsonl"

if [[ -x "$BUILD/bench/cuda/cuda_conv_bench" ]]; then
  "$BUILD/bench/cuda/cuda_conv_bench" --batch 32 | tee "$OUT/conv.jsonl"
fi

if [[ -x "$BUILD/bench/cuda/cuda_model_bench" ]]; then
  "$PY" bench/cuda/peer_models.py --out "$OUT/weights" --batch "${MODEL_BATCHES:-1,8,32,128,256}" \
    | tee "$OUT/models.jsonl"
  for p in resnet50 vit_b16 efficientnet_lite0; do
    if [[ -f "$OUT/weights/$p.safetensors" ]]; then
      "$BUILD/bench/cuda/cuda_model_bench" --preset "$p" --weights "$OUT/weights/$p.safetensors" \
        --batch "${MODEL_BATCHES:-1,8,32,128,256}" | tee -a "$OUT/models.jsonl"
    fi
  done
fi
"$PY" bench/cuda/summarize.py "$OUT"/*.jsonl | tee "$OUT/summary.md"
