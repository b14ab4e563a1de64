#!/usr/bin/env bash
# Builds unime with AddressSanitizer and UndefinedBehaviorSanitizer (CMake's UNIME_SANITIZE, gcc,
# CPU only) into build/sanitize, then runs the GoogleTest suite and pytest against that build. The
# fuzzers (tools/run_fuzz.sh) cover the file parsers under ASan; this covers everything else in C++:
# the kernels, the batch builder, the models, the trainer, as the tests drive them.
#
#   bash tools/sanitize.sh [PYTEST_ARGS...]     # e.g. tests/python/test_ops.py -x; default: tests/python
#
# SANITIZE_STEPS (default "build ctest pytest") picks the steps. Any report aborts the process that
# triggered it (-fno-sanitize-recover) and is kept under build/sanitize/reports; a clean run is rc 0.
# Leak checking is off: LibTorch and CPython keep their process-lifetime allocations until exit.
# The tests marked memory_bound (peak-RSS bounds) run with an 8 MB quarantine instead of 256 MB.
# Not part of tools/test.sh: the instrumented build takes about 18 minutes on 2 cores (ccache cold),
# and pytest under it about twice its usual time.
# Expects `bash tools/bootstrap.sh --with-tests` first (the venv, torch, cmake, ninja, GoogleTest).
set -euo pipefail
cd "$(dirname "$0")/.."

steps="${SANITIZE_STEPS:-build ctest pytest}"
build=build/sanitize
export PATH="$PWD/.venv/bin:$PATH"
# Reports go to files as well as stderr: pytest captures a test's stderr, and an abort loses it.
reports="$PWD/$build/reports"
rm -rf "$reports" && mkdir -p "$reports"
asan_options="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:log_path=$reports/asan"
export ASAN_OPTIONS="$asan_options"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
# Prints every report and fails when there is one.
check_reports() {
  if compgen -G "$reports/*" >/dev/null; then
    cat "$reports"/* >&2
    echo "sanitize: reports above (also in $reports)" >&2
    exit 1
  fi
}

if [[ " $steps " == *" build "* ]]; then
  echo "== sanitize: build ($build, address,undefined)"
  cmake -S . -B "$build" -G Ninja -DPython_EXECUTABLE="$PWD/.venv/bin/python" -DUNIME_SANITIZE=address,undefined \
    -DUNIME_BUILD_TESTS=ON -DUNIME_CUDA=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g1 >/dev/null
  ninja -C "$build"
fi

if [[ " $steps " == *" ctest "* ]]; then
  echo "== sanitize: ctest"
  ctest --test-dir "$build" --output-on-failure -j2 || { check_reports; exit 1; }
  check_reports
fi

if [[ " $steps " == *" pytest "* ]]; then
  echo "== sanitize: pytest"
  # The package as pip installs it (python/unime, the module, its torch version file), under the
  # build folder, ahead of the installed one on sys.path. CPython is not instrumented, so the
  # sanitizers' runtimes are preloaded.
  pkg="$build/pkg/unime"
  rm -rf "$pkg" && mkdir -p "$pkg"
  cp -r python/unime/. "$pkg/"
  cp "$build"/_C.*.so "$build/_torch_version.txt" "$pkg/"
  preload="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
  run() { LD_PRELOAD="$preload" PYTHONPATH="$PWD/$build/pkg" .venv/bin/python "$@"; }
  run -c "import unime, os; assert os.path.realpath(unime.__file__).startswith(os.path.realpath('$build')), unime.__file__"
  status=0
  if [ $# -gt 0 ]; then
    run -m pytest -p no:cacheprovider "$@" || status=$?
  else
    run -m pytest -p no:cacheprovider tests/python -m "not memory_bound" \
      --deselect tests/python/test_mteb_adapter.py || status=$?
    # The peak-RSS bounds count ASan's quarantine (256 MB of freed memory held back by default).
    ASAN_OPTIONS="$asan_options:quarantine_size_mb=8" run -m pytest -p no:cacheprovider tests/python \
      -m memory_bound || status=$?
    # pytrec_eval (mteb's retrieval metrics) frees with free() what it allocated with new[]: its
    # tests run on their own with that one check off.
    ASAN_OPTIONS="$asan_options:alloc_dealloc_mismatch=0" run -m pytest -p no:cacheprovider \
      tests/python/test_mteb_adapter.py || status=$?
  fi
  check_reports
  exit "$status"
fi
