#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds, then runs
# CTest (C++ unit + integration tests; GPU tests report as skipped without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLOOKALIKE_BUILD_TESTS=ON ${LOOKALIKE_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
export LOOKALIKE_PYTHON="$PWD/.venv/bin/python"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}
