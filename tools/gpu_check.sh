#!/usr/bin/env bash
# The GPU checks in one go, for a lent GPU machine (docs/development/testing.md): builds unime there with its
# CUDA kernels, runs the GPU tests and the GPU benchmarks, and writes each log under $OUT (or ./gpu-logs).
#
# Two steps, because the GPU machine reaches no package index:
#   here:   bash tools/gpu_check.sh --prepare     # downloads the pinned test oracles as cp312 wheels into .devcarry/
#   there:  bash tools/gpu_check.sh               # carry .devcarry; one call of the device tool
#
# Choose with TESTS (test files, without test_ and .py) and BENCHES (benchmarks/ scripts, without .py; "" for
# none):
#   TESTS="attention_gpu decoder_gpu trainer_gpu ops losses miner" \
#   BENCHES="bench_encode_gpu bench_ops bench_train" bash tools/gpu_check.sh
# TRAIN_ARGS and ENCODE_ARGS replace bench_train's and bench_encode_gpu's arguments; PY names the Python that
# holds torch; UNIME_TARGET the folder unime is built into (default /tmp/unime), reused by a rerun; DRY_RUN=1
# goes on without a GPU (every test skips), to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.devcarry

if [ "${1:-}" = --prepare ]; then
  # The GPU image holds torch 2.11, pytest, numpy, safetensors, accelerate and the build tools (with
  # scikit-build-core's packaging and pathspec), but a newer transformers, tokenizers and huggingface-hub
  # than the oracles we pin (requirements.txt), and no peft 0.14.
  exclude=$(git rev-parse --git-path info/exclude) || exit 1
  grep -qx "/$CARRY/" "$exclude" 2>/dev/null || echo "/$CARRY/" >>"$exclude"
  rm -rf "$CARRY/whl" && mkdir -p "$CARRY/whl"
  pins=$(grep -E '^(transformers|peft|tokenizers|pillow|nlohmann-json|scikit-build-core)[=>]' requirements.txt)
  plats=()
  for n in 17 24 27 28 31 34 35; do plats+=(--platform "manylinux_2_${n}_x86_64"); done
  # shellcheck disable=SC2086
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plats[@]}" --platform manylinux2014_x86_64 -d "$CARRY/whl" $pins 'huggingface-hub<1.0' || exit 1
  ls "$CARRY/whl"
  du -sh "$CARRY"
  exit 0
fi

OUT=${OUT:-$PWD/gpu-logs}
mkdir -p "$OUT"
PY=${PY:-python3}
TESTS=${TESTS-"attention_gpu decoder_gpu trainer_gpu ops losses miner"}
BENCHES=${BENCHES-"bench_encode_gpu bench_ops bench_train"}
TRAIN_ARGS=${TRAIN_ARGS:-"--hidden 1024 --layers 8 --batch 64 --chunk 16 --steps 5"}
ENCODE_ARGS=${ENCODE_ARGS:-"--dtype bfloat16 --images 32 --texts 128"}
export PYTHONUNBUFFERED=1

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
} 2>&1 | tee "$OUT/machine.txt"
# Without a GPU every test here skips: stop, unless this is a dry run of the script itself (DRY_RUN=1).
if [ "${DRY_RUN:-0}" != 1 ] && ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu_check: torch sees no CUDA device here" >&2
  exit 1
fi

# The carried wheels are cp312, the GPU image's Python; elsewhere (a dry run) the installed packages serve.
if ls "$CARRY"/whl/*.whl >/dev/null 2>&1 && "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$CARRY"/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# A rerun on the same warm machine reuses the build in UNIME_TARGET (REBUILD=1 builds again). The system
# g++ links the shared libstdc++ torch uses (cmake/CheckSharedLibstdcxx.cmake says why it matters).
TARGET=${UNIME_TARGET:-/tmp/unime}
if [ "${REBUILD:-0}" = 1 ] || ! ls "$TARGET"/unime/_C*.so >/dev/null 2>&1; then
  start=$(date +%s)
  CXX=${CXX:-/usr/bin/g++} "$PY" -m pip install -q --no-build-isolation --no-deps --upgrade --target "$TARGET" \
    -Cbuild-dir=build/gpu -Ccmake.define.UNIME_CUDA_ARCHS=90 . >"$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log"; exit 1; }
  echo "build: $(($(date +%s) - start)) s" | tee -a "$OUT/machine.txt"
fi
export PYTHONPATH=$TARGET${PYTHONPATH:+:$PYTHONPATH}
# The tests and benchmarks must import the build, not the source tree's python/unime.
"$PY" -c 'import unime, sys; print("unime from", unime.__file__); sys.exit(0 if unime._C.__with_cuda__ else "unime._C was built without CUDA")' \
  2>&1 | tee -a "$OUT/machine.txt" || exit 1

status=0
files=()
for t in $TESTS; do files+=("tests/python/test_$t.py"); done
if [ ${#files[@]} -gt 0 ]; then
  start=$(date +%s)
  "$PY" -m pytest -q -p no:cacheprovider "${files[@]}" 2>&1 | tee "$OUT/tests.log" | tail -25 || status=1
  echo "tests: $(($(date +%s) - start)) s" | tee -a "$OUT/machine.txt"
fi

for b in $BENCHES; do
  start=$(date +%s)
  case $b in
    bench_train) args="--device cuda $TRAIN_ARGS" ;;
    bench_encode_gpu) args="--device cuda $ENCODE_ARGS" ;;
    *) args="--device cuda" ;;
  esac
  echo "== $b $args"
  # shellcheck disable=SC2086
  "$PY" "benchmarks/$b.py" $args 2>&1 | tee "$OUT/$b.log" | tail -40 || status=1
  echo "$b: $(($(date +%s) - start)) s" | tee -a "$OUT/machine.txt"
done
exit $status
