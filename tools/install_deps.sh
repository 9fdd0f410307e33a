#!/usr/bin/env bash
# Installs everything Lookalike needs on Debian 12: the C++ toolchain and
# libraries from Debian, and a Python environment (.venv) for the reference
# models, weight converters and the example client. Idempotent: a second run
# only checks. The CUDA toolkit is expected in /usr/local/cuda (optional).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format clang-tidy
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopencv-dev libfaiss-dev libopenblas-dev libdnnl-dev
  libsqlite3-dev sqlite3 libspdlog-dev libfmt-dev nlohmann-json3-dev
  libpq-dev postgresql
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv python3-pip python3-numpy python3-torch python3-torchvision
  libyaml-cpp-dev libcli11-dev prometheus-cpp-dev libgif-dev libjpeg-dev libpng-dev curl zlib1g-dev
)

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

# Python: Debian's CPU PyTorch (small, no CUDA wheels) plus pinned PyPI
# packages in a venv that sees the system site-packages.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv"
  "$PY" -m venv --system-site-packages .venv
fi
stamp=.venv/.requirements.sha
want=$(cat tools/requirements.txt tools/requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> Installing Python packages (tools/requirements.txt, tools/requirements-nodeps.txt)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tools/requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r tools/requirements-nodeps.txt
  echo "$want" > "$stamp"
else
  echo "==> Python packages: up to date"
fi
