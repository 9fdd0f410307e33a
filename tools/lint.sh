#!/usr/bin/env bash
# Style checks: clang-format (check mode) and clang-tidy (.clang-tidy's checks)
# over the project's C++ and CUDA sources.
#
#   tools/lint.sh                 files changed against BASE (default: the merge base
#                                 with origin/main, else HEAD), plus untracked ones
#   tools/lint.sh --all           every tracked source
#   tools/lint.sh --format-only   skip clang-tidy (what .ci/run does, over --all)
#   tools/lint.sh --fix           rewrite files with clang-format instead of failing
#   tools/lint.sh --base REF      compare against REF
#
# clang-tidy reads build/compile_commands.json (BUILD_DIR to change) and runs on
# the changed .cc files only (CUDA sources are formatted, not tidied). Exit
# status: 0 clean, 1 when a file differs from .clang-format or a check fires.
set -euo pipefail
cd "$(dirname "$0")/.."

all=0 format_only=0 fix=0 base=""
while (($#)); do
  case "$1" in
    --all) all=1 ;;
    --format-only) format_only=1 ;;
    --fix) fix=1 ;;
    --base) base=${2:?--base needs a git ref}; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "lint.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
BUILD_DIR=${BUILD_DIR:-build}
command -v "$CLANG_FORMAT" >/dev/null || { echo "lint.sh: $CLANG_FORMAT not found (tools/install_deps.sh installs it)" >&2; exit 2; }

is_source() { [[ "$1" =~ \.(cc|h|cu|cuh)$ ]]; }

files=()
if ((all)); then
  while IFS= read -r f; do files+=("$f"); done < <(git ls-files '*.cc' '*.h' '*.cu' '*.cuh')
else
  if [ -z "$base" ]; then
    base=$(git merge-base HEAD origin/main 2>/dev/null || git rev-parse HEAD)
  fi
  while IFS= read -r f; do
    if is_source "$f" && [ -f "$f" ]; then files+=("$f"); fi
  done < <({ git diff --name-only --diff-filter=d "$base" --; git ls-files --others --exclude-standard; } | sort -u)
fi

if ((${#files[@]} == 0)); then
  echo "lint: no sources to check"
  exit 0
fi

status=0
if ((fix)); then
  "$CLANG_FORMAT" -i "${files[@]}"
  echo "lint: formatted ${#files[@]} files"
else
  drift=()
  for f in "${files[@]}"; do
    "$CLANG_FORMAT" --dry-run -Werror "$f" >/dev/null 2>&1 || drift+=("$f")
  done
  if ((${#drift[@]})); then
    echo "lint: ${#drift[@]} of ${#files[@]} files differ from .clang-format (fix with tools/lint.sh --fix):"
    printf '  %s\n' "${drift[@]}"
    "$CLANG_FORMAT" --dry-run "${drift[0]}" 2>&1 | head -20
    status=1
  else
    echo "lint: clang-format clean (${#files[@]} files)"
  fi
fi

if ((format_only)); then exit $status; fi

tidy=()
for f in "${files[@]}"; do [[ "$f" == *.cc ]] && tidy+=("$f"); done
if ((${#tidy[@]} == 0)); then exit $status; fi
command -v "$CLANG_TIDY" >/dev/null || { echo "lint.sh: $CLANG_TIDY not found (tools/install_deps.sh installs it)" >&2; exit 2; }
if [ ! -f "$BUILD_DIR/compile_commands.json" ]; then
  echo "lint.sh: $BUILD_DIR/compile_commands.json is missing: configure a build first (tools/test.sh does)" >&2
  exit 2
fi
echo "lint: clang-tidy on ${#tidy[@]} files"
for f in "${tidy[@]}"; do
  # Sources the build does not compile (e.g. CUDA-only ones on a build without
  # CUDA) have no compile command: say so rather than guess flags.
  if ! grep -q "\"file\": \".*/$f\"" "$BUILD_DIR/compile_commands.json"; then
    echo "  skip $f (not in $BUILD_DIR's compile commands)"
    continue
  fi
  "$CLANG_TIDY" -p "$BUILD_DIR" --quiet "$f" 2>/dev/null || status=1
done
exit $status
