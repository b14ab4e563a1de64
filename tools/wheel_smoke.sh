#!/usr/bin/env bash
# The binary wheel as a user without a compiler gets it: builds the wheel (tools/build_wheel.sh),
# installs it with its dependencies from PyPI into a fresh virtual environment (no system site
# packages) under a PATH that holds no compiler and no build tool, then checks there that
# `import unime` works, that no build dependency came along (cmake, ninja, scikit-build-core,
# nlohmann-json), runs examples/quickstart.py, and checks encode parity with transformers
# (tools/wheel_parity.py: the models and transformers' vectors are made in .venv first).
#
#   bash tools/wheel_smoke.sh            # build the wheel, then test it
#   bash tools/wheel_smoke.sh WHEEL      # test a wheel built before
#
# Needs .venv (tools/bootstrap.sh) and PyPI. Prints the time of each step. The dependencies are resolved
# on PyPI each run (pip download) into a wheelhouse kept across runs and checkouts, like a cache
# (UNIME_WHEELHOUSE, default ~/.cache/unime/wheelhouse, about 2.7 GB: torch and the NVIDIA wheels),
# then installed from it; pip's own HTTP cache is not relied on (it stays empty on our machines).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

t0=$(date +%s)
step_start=$t0
times=()
lap() {  # lap NAME: records the seconds since the previous lap
  local now
  now=$(date +%s)
  times+=("$1 $((now - step_start)) s")
  step_start=$now
}

if [ $# -ge 1 ]; then
  wheel="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
else
  bash tools/build_wheel.sh .venv/bin/python
  tag="$(.venv/bin/python -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  wheel="$(ls "$root"/dist/unime-*-"$tag"-*.whl)"
  lap "build the wheel"
fi

wheelhouse="${UNIME_WHEELHOUSE:-$HOME/.cache/unime/wheelhouse}"
mkdir -p "$wheelhouse"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The wheel's interpreter: the Python that .venv was made from (venv's own python, not a venv's).
base_python="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
"$base_python" -m venv "$work/venv"
# The only directory on PATH: the fresh environment's scripts. No gcc, g++, cc, c++, clang, nvcc,
# cmake, ninja or ccache can be found from there, and CC/CXX/CUDAHOSTCXX are unset.
smoke=(env -u CC -u CXX -u CUDAHOSTCXX -u CUDACXX -u PYTHONPATH -u VIRTUAL_ENV PATH="$work/venv/bin")
# scikit-image: the quickstart's photographs (skimage.data), not a unime dependency.
echo "== wheel_smoke: resolving $(basename "$wheel") and its dependencies on PyPI (files kept in $wheelhouse)"
.venv/bin/python -m pip download -q -d "$wheelhouse" "$wheel" scikit-image
rm -f "$wheelhouse"/unime-*.whl  # only the dependencies are kept: the wheel under test is installed by path
lap "resolve on PyPI, download what the wheelhouse lacks"
echo "== wheel_smoke: installing them into a fresh venv"
"${smoke[@]}" python -m pip install -q --no-compile --no-index --find-links "$wheelhouse" "$wheel" scikit-image
lap "pip install into the fresh venv (torch and the CUDA wheels included)"

# From the temporary folder: the checkout's folders (python/, cmake/) must not be importable.
(cd "$work" && "${smoke[@]}" python -) <<'PY'
import importlib.metadata as md
import importlib.util
import os
import shutil
import sys

tools = ["gcc", "g++", "cc", "c++", "clang", "clang++", "nvcc", "cmake", "ninja", "ccache", "ld"]
found = {t: shutil.which(t) for t in tools if shutil.which(t)}
assert not found, f"a compiler or build tool is reachable: {found}"
build_deps = ["cmake", "ninja", "scikit-build-core", "scikit_build_core", "nlohmann-json", "nlohmann_json"]
installed = []
for name in build_deps:
    try:
        installed.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
installed += [m for m in ("cmake", "ninja", "scikit_build_core", "nlohmann_json") if importlib.util.find_spec(m)]
assert not installed, f"build dependencies installed in the smoke venv: {installed}"
assert sys.prefix != sys.base_prefix and not any("site-packages" in p and not p.startswith(sys.prefix)
                                                 for p in sys.path), "not an isolated venv"
import torch  # noqa: E402

import unime  # noqa: E402

assert unime.__file__.startswith(sys.prefix), unime.__file__
# One OpenMP runtime, torch's (the module needs libgomp.so.1 and must find the copy torch loaded), and
# the module's kernels on torch's threads.
gomp = {line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line}
assert len(gomp) == 1 and os.path.dirname(next(iter(gomp))) == os.path.join(os.path.dirname(torch.__file__), "lib"), gomp
assert unime._C._parallel_for_threads() >= min(2, torch.get_num_threads()), "unime's CPU kernels run on one thread"
print(f"wheel_smoke: import unime {unime.__version__} from {os.path.dirname(unime.__file__)}; built against torch "
      f"{unime._C.__torch_version__}, running torch {torch.__version__}; CUDA kernels: {unime._C.__with_cuda__}; "
      f"no compiler on PATH, no build dependency installed")
PY
lap "import and isolation checks"

echo "== wheel_smoke: models and transformers' reference vectors (in .venv)"
.venv/bin/python tools/wheel_parity.py make "$work/models"
lap "tiny models + reference (.venv)"

echo "== wheel_smoke: examples/quickstart.py in the fresh venv"
(cd "$work" && "${smoke[@]}" python "$root/examples/quickstart.py" --model "$work/models/quickstart-model")
lap "quickstart"

echo "== wheel_smoke: encode parity in the fresh venv"
(cd "$work" && "${smoke[@]}" python "$root/tools/wheel_parity.py" check "$work/models")
lap "encode parity"

echo "wheel_smoke: passed in $(( $(date +%s) - t0 )) s:"
printf '  %s\n' "${times[@]}"
