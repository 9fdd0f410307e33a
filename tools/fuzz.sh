#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz; clang, ASan + UBSan, in build-fuzz/)
# and runs each for SECONDS (default 60) starting from its checked-in seed
# corpus (tests/fuzz/corpus/<target>/). Fails when any target reports a crash,
# a leak, a timeout, an out-of-memory or a sanitizer finding; the input is kept
# under build-fuzz/artifacts/<target>/. Prints one line per target: executions,
# seconds, corpus entries. SECONDS=0 only replays the seed corpora (regression).
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_JOBS=2 tools/fuzz.sh 15        # two targets at a time (.ci/run)
#   LOOKALIKE_CLIP_VOCAB=.../bpe_simple_vocab_16e6.txt.gz  # tokenizer on CLIP's vocabulary
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
FUZZ_JOBS=${FUZZ_JOBS:-1}
ALL_TARGETS=(fuzz_image_decode fuzz_safetensors fuzz_model_json fuzz_snapshot fuzz_metadata
  fuzz_config fuzz_clip_tokenizer fuzz_http_api fuzz_service_requests)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")

mkdir -p "$BUILD_DIR"
CC=${FUZZ_CC:-clang-14} CXX=${FUZZ_CXX:-clang++-14} cmake -S . -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOKALIKE_FUZZ=ON -DLOOKALIKE_ENABLE_CUDA=OFF \
  -DLOOKALIKE_BUILD_TESTS=OFF >"$BUILD_DIR/configure.log" 2>&1 ||
  { cat "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}"

# The tokenizer target uses CLIP's own vocabulary when the .venv has it.
if [ -z "${LOOKALIKE_CLIP_VOCAB:-}" ]; then
  vocab=$(ls .venv/lib/python3*/site-packages/open_clip/bpe_simple_vocab_16e6.txt.gz 2>/dev/null |
    head -1 || true)
  [ -n "$vocab" ] && export LOOKALIKE_CLIP_VOCAB=$PWD/$vocab
fi
# Leaks fail the run; allocations over the limit are reported, not served.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1 seeds=tests/fuzz/corpus/$1 work=$BUILD_DIR/corpus/$1 art=$BUILD_DIR/artifacts/$1/
  local log=$BUILD_DIR/logs/$t.log
  mkdir -p "$work" "$art" "$BUILD_DIR/logs" "$seeds"
  local args=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="$art"
    -print_final_stats=1)
  if [ "$SECONDS_EACH" = 0 ]; then
    "$BUILD_DIR/fuzz/$t" "${args[@]}" -runs=0 "$seeds" >"$log" 2>&1
  else
    "$BUILD_DIR/fuzz/$t" "${args[@]}" -max_total_time="$SECONDS_EACH" "$work" "$seeds" \
      >"$log" 2>&1
  fi
}

summary() {
  local t=$1 rc=$2 log=$BUILD_DIR/logs/$1.log
  local execs secs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  printf '%-22s %s  executions %-10s seconds %-5s corpus %s\n' "$t" \
    "$([ "$rc" = 0 ] && echo ok || echo FAILED)" "${execs:-?}" "${secs:-?}" \
    "$(ls "$BUILD_DIR/corpus/$t" 2>/dev/null | wc -l)"
}

failed=0
pids=() names=()
flush() {
  local i rc
  for i in "${!pids[@]}"; do
    rc=0; wait "${pids[$i]}" || rc=$?
    summary "${names[$i]}" "$rc"
    if [ "$rc" != 0 ]; then
      failed=1
      echo "---- ${names[$i]}: last lines of $BUILD_DIR/logs/${names[$i]}.log" >&2
      tail -40 "$BUILD_DIR/logs/${names[$i]}.log" >&2
    fi
  done
  pids=() names=()
}
for t in "${TARGETS[@]}"; do
  run_one "$t" & pids+=($!) names+=("$t")
  ((${#pids[@]} < FUZZ_JOBS)) || flush
done
flush
exit "$failed"
