#!/usr/bin/env bash
# Builds, tests, sanitizes and benchmarks the CUDA parts (kernels, CUDA
# backend, GPU index) on a GPU machine that has only the CUDA toolkit, cuBLAS,
# spdlog, GoogleTest, CMake, ninja and Python with PyTorch: the server and its
# dependencies (gRPC, OpenCV, FAISS, SQLite) are left out of this build.
#
#   tools/gpu_check.sh [STAGE ...]      default: build test sanitize
# Stages, in the order given:
#   build     configure and build everything of the build without the server
#   test      every test except whole-model parity; fails if a GPU test skipped
#   parity    whole-model parity (fixtures by tools/make_reference.py: needs
#             torch, torchvision, timm, safetensors and, for EfficientNet-Lite,
#             efficientnet_lite_pytorch in $PYTHON)
#   sanitize  compute-sanitizer memcheck over the GPU test binaries, racecheck
#             and synccheck over the kernel tests and the GPU index tests
#   bench     bench/cuda/run.sh and bench/gpu_index/run.sh (ours and peers)
# Environment: BUILD_DIR (build-gpu), OUT (logs; $BUILD_DIR/gpu-check),
#   LOOKALIKE_CUDA_ARCHITECTURES (90), PYTHON (python3), JOBS (nproc),
#   SANITIZE_FILTER (gtest filter for memcheck; default every test),
#   PARITY_FIXTURES (presets for the parity stage; resnet50;vit_b16;efficientnet_lite0;convnext_tiny;convnextv2_tiny;swin_tiny;deit_small_distilled).
# Logs go to $OUT/<stage>.log; a summary table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
OUT=${OUT:-$BUILD_DIR/gpu-check}
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
ARCH=${LOOKALIKE_CUDA_ARCHITECTURES:-90}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(build test sanitize)
SUMMARY=()
FAILED=0

# Test suites that need a GPU: none of them may skip where one is present.
GPU_SUITES='#[0-9]+: ([A-Za-z]+/)?(AttentionTest|ConvTest|DepthwiseTest|ElementwiseTest|LinearTest|PreprocessTest|CudaBackendTest|CudaBackendGraphsTest|GpuFlatStoreTest|GpuFlatStoreKnnTest|GpuIndexFlatTest)[./]|cuda_parity_|models_parity_cuda_'

note() { SUMMARY+=("$(printf '%-9s %-6s %s' "$1" "$2" "$3")"); [ "$2" = ok ] || FAILED=1; }

gpu_present() { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; }

stage_build() {
  local log=$OUT/build.log start=$SECONDS
  if cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOOKALIKE_ENABLE_CUDA=ON \
      -DLOOKALIKE_BUILD_SERVER=OFF -DLOOKALIKE_BUILD_TESTS=ON -DLOOKALIKE_BUILD_BENCHMARKS=ON \
      -DLOOKALIKE_CUDA_ARCHITECTURES="$ARCH" \
      -DLOOKALIKE_PARITY_FIXTURES="${PARITY_FIXTURES:-resnet50;vit_b16;efficientnet_lite0;convnext_tiny;convnextv2_tiny;swin_tiny;deit_small_distilled}" \
      >"$log" 2>&1 &&
     cmake --build "$BUILD_DIR" -j "$JOBS" >>"$log" 2>&1; then
    note build ok "$((SECONDS - start)) s, sm_$ARCH"
  else
    note build FAIL "see $log"; tail -20 "$log"
  fi
}

# "N tests, P passed, S skipped, F failed" from a ctest log.
ctest_counts() {
  local log=$1
  local total passed skipped failed
  total=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#' "$log")
  passed=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#.* Passed' "$log")
  skipped=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#.*Skipped' "$log")
  failed=$((total - passed - skipped))
  echo "$total $passed $skipped $failed"
}

run_ctest() {  # name, ctest args...
  local name=$1; shift
  local log=$OUT/$name.log start=$SECONDS
  LOOKALIKE_PYTHON="$PY" ctest --test-dir "$BUILD_DIR" --output-on-failure -j 4 \
    --output-junit "$OUT/$name.junit.xml" "$@" >"$log" 2>&1
  local rc=$?
  read -r total passed skipped failed < <(ctest_counts "$log")
  local what="$total tests: $passed passed, $skipped skipped, $failed failed ($((SECONDS - start)) s)"
  if [ $rc -ne 0 ] || [ "$total" -eq 0 ]; then
    note "$name" FAIL "$what; see $log"
  elif gpu_present && grep -E 'Skipped' "$log" | grep -qE "$GPU_SUITES"; then
    # With a GPU, no GPU test may skip: that would hide an untested GPU path.
    note "$name" FAIL "$what; GPU tests skipped with a GPU present:"
    grep -E 'Skipped' "$log" | grep -E "$GPU_SUITES" | head -20
  else
    note "$name" ok "$what"
  fi
}

stage_test() { run_ctest test -LE parity; }
stage_parity() { run_ctest parity -L parity; }

stage_sanitize() {
  if ! command -v compute-sanitizer >/dev/null; then note sanitize FAIL "compute-sanitizer not found"; return; fi
  if ! gpu_present; then note sanitize FAIL "no GPU"; return; fi
  local bins=(tests/kernels/kernel_gpu_test tests/models/cuda/cuda_backend_test
              tests/index/gpu/gpu_flat_store_test tests/index/gpu/gpu_index_flat_test)
  local filter=${SANITIZE_FILTER:-*} bad=0 ran=0
  for tool in memcheck racecheck synccheck; do
    for bin in "${bins[@]}"; do
      [ -x "$BUILD_DIR/$bin" ] || continue
      # Races and barrier misuse live in the kernels: the model kernels' tests
      # and the GPU index's (its selection kernels); memcheck covers every binary.
      [ "$tool" != memcheck ] && [ "$bin" = tests/models/cuda/cuda_backend_test ] && continue
      local log=$OUT/sanitize-$tool-$(basename "$bin").log
      ran=$((ran + 1))
      if ! compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 20 \
           "$BUILD_DIR/$bin" --gtest_filter="$filter" >"$log" 2>&1; then
        bad=$((bad + 1))
        echo "== $tool $(basename "$bin"): errors, see $log"; grep -m5 -E "=========|FAILED" "$log"
      fi
    done
  done
  if [ $bad -eq 0 ] && [ $ran -gt 0 ]; then note sanitize ok "$ran runs clean"; else note sanitize FAIL "$bad of $ran runs reported errors"; fi
}

stage_bench() {
  local start=$SECONDS rc=0
  PYTHON="$PY" bench/cuda/run.sh "$BUILD_DIR" "$OUT/bench-cuda" >"$OUT/bench-cuda.log" 2>&1 || rc=1
  # bench/gpu_index/run.sh's steps on this build (it would configure its own).
  local gi=$OUT/bench-gpu-index
  mkdir -p "$gi"
  { "$BUILD_DIR/bench/gpu_index/gpu_index_bench" --json "$gi/lookalike.jsonl" | tee "$gi/lookalike.md" &&
    "$PY" bench/gpu_index/torch_peer.py --json "$gi/torch.jsonl" | tee "$gi/torch.md" &&
    "$PY" bench/gpu_index/compare.py "$gi/lookalike.jsonl" "$gi/torch.jsonl" | tee "$gi/compare.md"
  } >"$OUT/bench-gpu-index.log" 2>&1 || rc=1
  if [ $rc -eq 0 ]; then note bench ok "$((SECONDS - start)) s: $OUT/bench-cuda, $OUT/bench-gpu-index"
  else note bench FAIL "see $OUT/bench-*.log"; fi
}

for s in "${STAGES[@]}"; do
  case $s in
    build|test|parity|sanitize|bench) "stage_$s" ;;
    *) echo "unknown stage '$s' (build test parity sanitize bench)" >&2; exit 2 ;;
  esac
done
echo
echo "stage     result details"
printf '%s\n' "${SUMMARY[@]}"
gpu_present || echo "(no GPU here: GPU tests skip, and sanitize/bench cannot run)"
exit $FAILED
