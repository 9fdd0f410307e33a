#!/usr/bin/env bash
# One command for the GPU flat index benchmark: builds the CUDA island with
# benchmarks, runs ours and the torch peer back to back on the same GPU, and
# prints both tables plus the ratios. Usage:
#   bench/gpu_index/run.sh [--quick] [OUT_DIR]
# Needs a CUDA GPU, nvcc, cuBLAS, spdlog, cmake, ninja and PyTorch with CUDA.
set -euo pipefail
cd "$(dirname "$0")/../.."
QUICK=""
if [[ "${1:-}" == "--quick" ]]; then QUICK="--quick"; shift; fi
OUT=${1:-build-bench/gpu_index}
BUILD=${BUILD_DIR:-build-bench}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOKALIKE_BUILD_SERVER=OFF \
  -DLOOKALIKE_BUILD_TESTS=OFF -DLOOKALIKE_BUILD_BENCHMARKS=ON \
  -DLOOKALIKE_CUDA_ARCHITECTURES=${LOOKALIKE_CUDA_ARCHITECTURES:-90} >"$OUT/configure.log"
cmake --build "$BUILD" --target gpu_index_bench -j "$(nproc)" >"$OUT/build.log"
"$BUILD/bench/gpu_index/gpu_index_bench" $QUICK --json "$OUT/lookalike.jsonl" | tee "$OUT/lookalike.md"
"$PY" bench/gpu_index/torch_peer.py $QUICK --json "$OUT/torch.jsonl" | tee "$OUT/torch.md"
"$PY" bench/gpu_index/compare.py "$OUT/lookalike.jsonl" "$OUT/torch.jsonl" | tee "$OUT/compare.md"
