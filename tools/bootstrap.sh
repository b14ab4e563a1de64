#!/usr/bin/env bash
# Sets up this checkout on a fresh machine: the system packages the build needs, a virtual
# environment .venv with the pinned Python packages (requirements.txt), and unime built from source
# and installed into it. Safe to re-run: each step is skipped or incremental when already done.
#
#   bash tools/bootstrap.sh               # library only
#   bash tools/bootstrap.sh --with-tests  # also the GoogleTest binaries (build/cmake, run by ctest)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=OFF
for arg in "$@"; do
  case "$arg" in
    --with-tests) with_tests=ON ;;
    *) echo "bootstrap.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# System packages (Debian): ccache for fast rebuilds, the demo's real data (Fashion-MNIST, English
# sentences from fortunes), and, for tests, GoogleTest, clang's fuzzer/sanitizer runtime and
# clang-format 14 (the style check). The library build itself needs only a C++ compiler from the
# system: CMake, ninja and the JSON headers (nlohmann-json) come from PyPI (requirements.txt).
packages=(ccache dataset-fashion-mnist fortunes)
[ "$with_tests" = ON ] && packages+=(libgtest-dev clang-14 libclang-rt-14-dev clang-format-14)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  python3 -m venv .venv
fi
echo "bootstrap: installing Python packages (requirements.txt)"
.venv/bin/python -m pip install -q -r requirements.txt

echo "bootstrap: building unime (UNIME_BUILD_TESTS=$with_tests)"
# --config-settings, not its short form -C, which Debian 12's pip (23.0) lacks.
start=$(date +%s)
.venv/bin/python -m pip install -q --no-build-isolation --no-deps \
  --config-settings=cmake.define.UNIME_BUILD_TESTS="$with_tests" .
echo "bootstrap: build and install took $(( $(date +%s) - start )) s"
