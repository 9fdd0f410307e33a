#!/usr/bin/env bash
# Crash loop against the real lookalike-server (tests/integration/crash_loop.cc):
# concurrent ingest of raw vectors and images, deletes and searches; SIGKILL at
# a random moment of each cycle; restart; then every acknowledged write must be
# present exactly once, every acknowledged delete gone, and self-search must
# find each item first. Builds what it needs in build/ (BUILD_DIR), makes the
# sample photos and weights if missing.
#
#   tools/crashloop.sh --cycles N [--seed S] [--min-ms A] [--max-ms B] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
PY=${LOOKALIKE_PYTHON:-$PWD/.venv/bin/python}
WEIGHTS=${LOOKALIKE_WEIGHTS:-$PWD/weights/efficientnet_lite0.safetensors}
PHOTOS=${LOOKALIKE_PHOTOS:-$PWD/$BUILD_DIR/tests/integration/photos}
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLOOKALIKE_BUILD_TESTS=ON ${LOOKALIKE_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target lookalike_crashloop lookalike-server lookalike
[ -f "$WEIGHTS" ] || "$PY" tools/prepare_weights.py
[ -f "$PHOTOS/metadata.csv" ] || "$PY" tools/make_sample_photos.py --out "$PHOTOS"
export LOOKALIKE_SERVER_BIN=$PWD/$BUILD_DIR/server/lookalike-server
export LOOKALIKE_CLI_BIN=$PWD/$BUILD_DIR/client/lookalike
export LOOKALIKE_WEIGHTS=$WEIGHTS LOOKALIKE_PHOTOS=$PHOTOS LOOKALIKE_PYTHON=$PY
export LOOKALIKE_SOURCE_DIR=$PWD
exec "$BUILD_DIR/tests/integration/lookalike_crashloop" "$@"
