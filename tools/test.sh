#!/usr/bin/env bash
# Runs the whole test suite: style (clang-format, ruff), GoogleTest (ctest), the fuzzers (safetensors, tokenizer, images) under ASan for
# UNIME_FUZZ_SECONDS (default 60), and pytest. Expects `bash tools/bootstrap.sh --with-tests` first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint"
bash tools/lint.sh

echo "== ctest"
ctest --test-dir build/cmake --output-on-failure -j2

echo "== fuzz (${UNIME_FUZZ_SECONDS:-60} s per target)"
bash tools/run_fuzz.sh "${UNIME_FUZZ_SECONDS:-60}"

echo "== pytest"
.venv/bin/python -m pytest tests/python "$@"
