#!/usr/bin/env bash
# Builds the safetensors header fuzzer (fuzz/safetensors_header_fuzzer.cc) with clang-14, libFuzzer,
# ASan and UBSan, writes a small seed corpus of valid files, and fuzzes for SECONDS.
#
#   bash tools/run_fuzz.sh [SECONDS=60] [OUTDIR=build/fuzz]
#
# OUTDIR keeps the binary, seeds/, corpus/ (grows across runs) and artifacts/ (crashing inputs).
# Exits non-zero when the fuzzer finds a crash, leak, timeout or out-of-memory input; reproduce
# with: OUTDIR/safetensors_header_fuzzer OUTDIR/artifacts/<file>
# Needs clang-14 and libclang-rt-14-dev (bash tools/bootstrap.sh --with-tests) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
outdir="${2:-build/fuzz}"
cxx="${UNIME_FUZZ_CXX:-clang++-14}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "run_fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2
  exit 2
fi
if ! command -v "$cxx" >/dev/null; then
  echo "run_fuzz.sh: $cxx not found; install clang-14 and libclang-rt-14-dev" >&2
  exit 2
fi

binary="$outdir/safetensors_header_fuzzer"
sources=(fuzz/safetensors_header_fuzzer.cc csrc/core/safetensors_reader.cc)
headers=(csrc/core/safetensors.h csrc/core/errors.h)
mkdir -p "$outdir/seeds" "$outdir/corpus" "$outdir/artifacts"

# Rebuild only when a source is newer than the binary (or this script changed the flags).
rebuild=0
[ -x "$binary" ] || rebuild=1
for f in "${sources[@]}" "${headers[@]}" "$0"; do [ "$f" -nt "$binary" ] && rebuild=1; done
if [ "$rebuild" = 1 ]; then
  echo "run_fuzz: building $binary"
  (set -x; "$cxx" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Icsrc "${sources[@]}" -o "$binary")
else
  echo "run_fuzz: $binary is up to date"
fi

echo "run_fuzz: writing seeds to $outdir/seeds"
python3 - "$outdir/seeds" <<'PY'
# Valid safetensors files (and one index) covering every dtype, metadata, 0-rank and zero-size
# tensors, padding, and an empty header; the fuzzer mutates from these.
import json, struct, sys, os

out = sys.argv[1]

def image(tensors, metadata=None, pad=True, lead=""):
    header, buf = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, itemsize in tensors:
        n = itemsize
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(buf), len(buf) + n]}
        buf += bytes((i * 7 + len(name)) % 256 for i in range(n))
    text = (lead + json.dumps(header, separators=(",", ":"))).encode()
    if pad:
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + buf

sizes = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4,
         "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8, "C64": 8, "F8_E4M3": 1,
         "F8_E5M2": 1, "F8_E8M0": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1}
seeds = {
    "empty": image([]),
    "one_f32": image([("weight", "F32", [2, 3], 4)]),
    "all_dtypes": image([("t." + d, d, [2], s) for d, s in sorted(sizes.items())]),
    "metadata": image([("a", "BF16", [4], 2)], metadata={"format": "pt", "k": "v"}),
    "scalar_and_empty": image([("s", "F64", [], 8), ("z", "I32", [0, 5], 4),
                               ("b", "U8", [3], 1)], pad=False, lead=" "),
    "index": json.dumps({"metadata": {"total_size": 8},
                         "weight_map": {"a": "model-00001-of-00002.safetensors",
                                        "b": "model-00002-of-00002.safetensors"}}).encode(),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
PY

dict="$outdir/safetensors.dict"
{
  for token in '"dtype"' '"shape"' '"data_offsets"' '"__metadata__"' '"weight_map"' \
    '"BOOL"' '"U8"' '"I8"' '"I16"' '"U16"' '"F16"' '"BF16"' '"I32"' '"U32"' '"F32"' '"F64"' \
    '"I64"' '"U64"' '"C64"' '"F8_E4M3"' '"F8_E5M2"' '"F8_E8M0"' '"F8_E4M3FNUZ"' \
    '"F8_E5M2FNUZ"' '"F4"' '18446744073709551615' '9223372036854775807' '-1' '1e5' \
    '\\u0000' '\\ud800' '..' 'version https://git-lfs'; do
    printf '"%s"\n' "${token//\"/\\\"}"
  done
} >"$dict"

echo "run_fuzz: fuzzing for ${seconds}s (new inputs go to $outdir/corpus)"
set +e
"$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
  -dict="$dict" -artifact_prefix="$outdir/artifacts/" "$outdir/corpus" "$outdir/seeds"
rc=$?
set -e
if [ "$rc" != 0 ]; then
  echo "run_fuzz: FAILED (exit $rc); crashing input(s) in $outdir/artifacts/" >&2
  exit "$rc"
fi
echo "run_fuzz: no crash in ${seconds}s"
