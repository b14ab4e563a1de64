#!/usr/bin/env bash
# The source distribution builds where the only system tool is a C++ compiler: makes the sdist
# (python -m build --sdist), checks that it holds what the build needs, then builds and installs it
# (build isolation off) in a fresh venv that has only torch and the PyPI build requirements (requirements.txt's
# pins of torch, scikit-build-core, nlohmann-json, cmake, ninja), under a PATH with only that venv and
# gcc/g++ with the binutils they drive (as, ld, ar, ranlib, readelf): no system cmake, ninja, ccache or
# nvcc, and CMake told not to search the system's folders (so no system nlohmann-json or ccache either).
# CUDA kernels are off (they need nvcc, a second system tool). Ends with the encode parity check
# (tools/wheel_parity.py) on the installed result.
#
#   bash tools/sdist_check.sh             # build isolation off, the build requirements installed first
#   bash tools/sdist_check.sh --isolated  # a bare venv: pip installs [build-system].requires itself,
#                                         # and scikit-build-core adds cmake and ninja (none on PATH)
#
# A full build without ccache: about 15 minutes on 2 cores, so tools/test.sh does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
isolated=0
case "${1:-}" in
  "") ;;
  --isolated) isolated=1 ;;
  *) echo "sdist_check.sh: unknown argument $1" >&2; exit 2 ;;
esac
t0=$(date +%s)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== sdist_check: python -m build --sdist"
.venv/bin/python -m build --sdist --no-isolation --outdir "$work/dist" . >"$work/sdist.log" 2>&1 ||
  { cat "$work/sdist.log" >&2; exit 1; }
sdist="$(ls "$work"/dist/unime-*.tar.gz)"
size=$(stat -c %s "$sdist")
tar -tzf "$sdist" | sed 's|^unime-[^/]*/||' >"$work/contents"
echo "sdist_check: $(basename "$sdist"): $((size / 1024)) KiB, $(wc -l <"$work/contents") entries"
for needed in pyproject.toml CMakeLists.txt README.md cmake/NlohmannJson.cmake cmake/TorchFromPython.cmake \
              cmake/UnimeCuda.cmake cmake/CheckSharedLibstdcxx.cmake csrc/model/torch_pch.h \
              csrc/python/module.cc python/unime/__init__.py python/unime/_build.py; do
  grep -qxF "$needed" "$work/contents" || { echo "sdist_check: $needed missing from the sdist" >&2; exit 1; }
done
# Every source CMakeLists.txt names must be in it.
missing=$(grep -oE '(csrc|examples)/[A-Za-z0-9_/.-]+\.(cc|cu|h)' CMakeLists.txt | sort -u |
          while read -r f; do grep -qxF "$f" "$work/contents" || echo "$f"; done)
[ -z "$missing" ] || { echo "sdist_check: missing from the sdist: $missing" >&2; exit 1; }
echo "sdist_check: the sdist holds pyproject.toml, CMakeLists.txt, cmake/, every source CMakeLists.txt names, python/unime"

# The compiler and the binutils it runs; nothing else from the system.
mkdir -p "$work/bin"
for tool in gcc g++ as ld ar ranlib readelf; do
  ln -s "$(command -v "$tool")" "$work/bin/$tool"
done
base_python="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
"$base_python" -m venv "$work/venv"
clean=(env -u CC -u CXX -u CUDAHOSTCXX -u CUDACXX -u PYTHONPATH -u VIRTUAL_ENV -u CMAKE_PREFIX_PATH
       -u CCACHE_DIR PATH="$work/venv/bin:$work/bin" CC=gcc CXX=g++)
mapfile -t pins < <(grep -E '^(torch|scikit-build-core|nlohmann-json|cmake|ninja)([=<>~! ;]|$)' requirements.txt)
wheelhouse="${UNIME_WHEELHOUSE:-$HOME/.cache/unime/wheelhouse}"
mkdir -p "$wheelhouse"
if ((isolated)); then
  echo "== sdist_check: fresh venv, nothing installed: pip fetches the build requirements from PyPI itself"
  build_args=()
else
  echo "== sdist_check: fresh venv with ${pins[*]} (resolved on PyPI, files kept in $wheelhouse)"
  .venv/bin/python -m pip download -q -d "$wheelhouse" "${pins[@]}"
  "${clean[@]}" python -m pip install -q --no-compile --no-index --find-links "$wheelhouse" "${pins[@]}"
  build_args=(--no-build-isolation)
fi
"${clean[@]}" python - <<'PY'
import shutil
found = {t: shutil.which(t) for t in ("cmake", "ninja", "ccache", "nvcc", "make", "clang", "c++", "cc")}
print("sdist_check: on PATH:", {t: p for t, p in found.items() if p})
assert not any(found[t] and "/venv/bin/" not in found[t] for t in ("cmake", "ninja", "cc", "c++")), found
assert not found["ccache"] and not found["nvcc"], found
PY

echo "== sdist_check: pip install ${build_args[*]} $(basename "$sdist") (CPU build, no ccache)"
start=$(date +%s)
(cd "$work" && "${clean[@]}" python -m pip install -v --no-compile "${build_args[@]}" --find-links "$wheelhouse" \
   --config-settings=build-dir="$work/build" --config-settings=cmake.define.UNIME_CUDA=OFF \
   --config-settings=cmake.define.CMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF \
   "$sdist") >"$work/build.log" 2>&1 || { tail -80 "$work/build.log" >&2; exit 1; }
echo "sdist_check: built and installed in $(( $(date +%s) - start )) s"
grep -E "using CMake|unime: (nlohmann|torch|CUDA)|The CXX compiler identification" "$work/build.log" | sed 's/^ */  /' | sort -u
grep -E "^(CMAKE_COMMAND|CMAKE_MAKE_PROGRAM|CMAKE_CXX_COMPILER|UNIME_CCACHE):" "$work/build/CMakeCache.txt" | sed 's/^/  /'
if grep -q '^UNIME_CCACHE:FILEPATH=/' "$work/build/CMakeCache.txt"; then
  echo "sdist_check: the build found a system ccache" >&2
  exit 1
fi

echo "== sdist_check: the installed build against transformers"
.venv/bin/python tools/wheel_parity.py make "$work/models" >/dev/null
(cd "$work" && "${clean[@]}" python "$root/tools/wheel_parity.py" check "$work/models")
echo "sdist_check: passed in $(( $(date +%s) - t0 )) s"
