#!/usr/bin/env bash
# Runs the whole test suite: style (clang-format, ruff), GoogleTest (ctest), the fuzzers (safetensors, tokenizer, images) under ASan for
# UNIME_FUZZ_SECONDS (default 60), pytest, and the binary wheel in a fresh venv without a compiler
# (tools/wheel_smoke.sh; UNIME_WHEEL_SMOKE=0 skips it). Expects `bash tools/bootstrap.sh --with-tests` first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint"
bash tools/lint.sh

echo "== ctest"
# The ctest of the CMake that built build/cmake (PyPI's, in .venv), else the system's.
ctest=ctest
[ -x .venv/bin/ctest ] && ctest=.venv/bin/ctest
"$ctest" --test-dir build/cmake --output-on-failure -j2

echo "== fuzz (${UNIME_FUZZ_SECONDS:-60} s per target)"
bash tools/run_fuzz.sh "${UNIME_FUZZ_SECONDS:-60}"

echo "== pytest"
.venv/bin/python -m pytest tests/python "$@"

if [ "${UNIME_WHEEL_SMOKE:-1}" != 0 ]; then
  echo "== wheel"
  bash tools/wheel_smoke.sh
fi
