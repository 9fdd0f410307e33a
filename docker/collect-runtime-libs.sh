#!/bin/sh
# Used by docker/Dockerfile.* in their build stage:
#
#   collect-runtime-libs.sh BASE_SONAMES OUT BINARY...
#
# A BINARY may also be a shared library the binaries load at run time with
# dlopen (cuBLAS: kernels/cublas_loader.h), which ldd cannot see: it is
# copied itself, with its closure.
#
# Copies every shared library the BINARYs load (ldd: the whole closure) that
# the base image does not have (BASE_SONAMES: `ldconfig -p` sonames of the
# pristine base, recorded before anything was installed) into
# OUT/usr/lib/x86_64-linux-gnu/<soname>, with the copyright file of the Debian
# package each comes from and a list of those packages and versions in
# OUT/usr/share/doc/lookalike/runtime-packages.txt. Libraries from the CUDA
# toolkit in /usr/local/cuda* (NVIDIA's wheels, no Debian package) are listed as
# "cuda-toolkit" with NVIDIA's license.
#
# Copying the closure instead of apt-installing the runtime packages leaves
# out everything that never runs: OpenCV's imgcodecs depends on GDAL, whose
# packages bring ~500 MB of data files, tools and further libraries; the
# libraries the dynamic loader maps are kept. The runtime stage uses the same
# base image, so these are exactly the files the build linked against.
# Fails when a library is not found or a file has no known origin.
set -eu
base=$1 out=$2
shift 2
lib=$out/usr/lib/x86_64-linux-gnu
doc=$out/usr/share/doc
list=$doc/lookalike/runtime-packages.txt
mkdir -p "$lib" "$doc/lookalike"
: > "$list"

ldd "$@" > /tmp/ldd.txt
if grep -q 'not found' /tmp/ldd.txt; then
  cat /tmp/ldd.txt >&2
  exit 1
fi
{
  awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' /tmp/ldd.txt
  for f in "$@"; do
    case "$f" in *.so | *.so.*) echo "$(basename "$f") $f" ;; esac
  done
} | sort -u -k1,1 > /tmp/libs.txt

while read -r soname path; do
  if grep -qxF "$soname" "$base"; then continue; fi
  cp -L "$path" "$lib/$soname"
  real=$(readlink -f "$path")
  case "$real" in
    /usr/local/cuda*)
      echo "cuda-toolkit $(basename "$(dirname "$(dirname "$real")")") $soname" >> "$list"
      if [ ! -f "$doc/cuda-toolkit/License.txt" ]; then
        mkdir -p "$doc/cuda-toolkit"
        find /usr/local/cuda/ -path '*dist-info/licenses/License.txt' \
          -exec cp {} "$doc/cuda-toolkit/License.txt" \; -quit
      fi
      continue ;;
  esac
  # Debian 12 registers most libraries under /lib (before the /usr merge).
  pkg=$( (dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true) \
         | head -n1 | cut -d: -f1)
  if [ -z "$pkg" ]; then
    echo "collect-runtime-libs: no package owns $real" >&2
    exit 1
  fi
  echo "$pkg $(dpkg-query -W -f '${Version}' "$pkg") $soname" >> "$list"
  if [ -f "/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$doc/$pkg/"
  fi
done < /tmp/libs.txt

sort -o "$list" "$list"
echo "collect-runtime-libs: $(find "$lib" -type f | wc -l) libraries, $(du -sh "$lib" | cut -f1)," \
  "from $(cut -d' ' -f1 "$list" | sort -u | wc -l) packages"
