#!/usr/bin/env bash
# Builds the fuzzers (safetensors header, tokenizer, image path; fuzz/*.cc) with clang-14, libFuzzer,
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

# nlohmann/json: the headers of the PyPI package in .venv (the library build's, cmake/NlohmannJson.cmake),
# else the system's.
json_include=()
json_dir="$(.venv/bin/python -c "import importlib.util as u, os; s = u.find_spec('nlohmann_json'); \
print(os.path.join(list(s.submodule_search_locations)[0], 'include') if s else '')" 2>/dev/null || true)"
[ -n "$json_dir" ] && json_include=(-isystem "$json_dir")

binary="$outdir/safetensors_header_fuzzer"
sources=(fuzz/safetensors_header_fuzzer.cc csrc/core/safetensors_reader.cc csrc/core/util/*.cc)
headers=(csrc/core/safetensors.h csrc/core/errors.h csrc/core/util/*.h)
mkdir -p "$outdir/seeds" "$outdir/corpus" "$outdir/artifacts"

# build_fuzzer BINARY SOURCE... -- DEPENDENCY...: (re)builds BINARY with libFuzzer, ASan and UBSan
# when it is missing or older than a source, a dependency (headers) or this script.
build_fuzzer() {
  local binary="$1" sources=() deps=() seen_sep=0 rebuild=0
  shift
  for a in "$@"; do
    if [ "$a" = "--" ]; then seen_sep=1; elif [ "$seen_sep" = 0 ]; then sources+=("$a"); else deps+=("$a"); fi
  done
  [ -x "$binary" ] || rebuild=1
  for f in "${sources[@]}" "${deps[@]}" "$0"; do [ "$f" -nt "$binary" ] && rebuild=1; done
  if [ "$rebuild" = 1 ]; then
    echo "run_fuzz: building $binary"
    # -ffp-contract=off: the image code is built that way (CMakeLists.txt) for Pillow-exact rounding.
    (set -x; "$cxx" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=undefined -ffp-contract=off -Icsrc "${json_include[@]}" "${sources[@]}" -o "$binary")
  else
    echo "run_fuzz: $binary is up to date"
  fi
}

# run_fuzzer LABEL BINARY DIR DICT: fuzzes from DIR/seeds into DIR/corpus for $seconds; a crash,
# leak, timeout or out-of-memory input lands in DIR/artifacts and ends the script with its code.
run_fuzzer() {
  local label="$1" binary="$2" dir="$3" dict="$4" rc
  echo "run_fuzz: fuzzing $label for ${seconds}s (new inputs go to $dir/corpus)"
  set +e
  "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$dir/seeds"
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    echo "run_fuzz: $label FAILED (exit $rc); crashing input(s) in $dir/artifacts/" >&2
    exit "$rc"
  fi
  echo "run_fuzz: $label: no crash in ${seconds}s"
}

build_fuzzer "$binary" "${sources[@]}" -- "${headers[@]}"

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

run_fuzzer "the safetensors header parser" "$binary" "$outdir" "$dict"

# ---- tokenizer (fuzz/tokenizer_fuzzer.cc): tokenizer.json loading, then encode/decode ----------
# Same flags and failure rule as above; its own seeds/, corpus/ and artifacts/ under
# OUTDIR/tokenizer. Reproduce with: OUTDIR/tokenizer_fuzzer OUTDIR/tokenizer/artifacts/<file>
tok_binary="$outdir/tokenizer_fuzzer"
tok_dir="$outdir/tokenizer"
tok_sources=(fuzz/tokenizer_fuzzer.cc csrc/core/tokenizer/*.cc csrc/core/util/*.cc)
mkdir -p "$tok_dir/seeds" "$tok_dir/corpus" "$tok_dir/artifacts"
build_fuzzer "$tok_binary" "${tok_sources[@]}" -- csrc/core/tokenizer/*.h csrc/core/errors.h csrc/core/util/*.h

echo "run_fuzz: writing tokenizer seeds to $tok_dir/seeds"
python3 - "$tok_dir/seeds" <<'PY'
# Texts for the fixed tokenizers (any first byte but '{'), and small tokenizer.json files ('{')
# that use every supported component, for the loader.
import json, os, sys

out = sys.argv[1]
texts = {
    "ascii": "Hello world, it's 2024!\n\tab abc  ca e e",
    "specials": "<s><img> ab<|u|>\n<|im_start|>the e e ca",
    "scripts": "中文 日本語 한국어 العربية हिन्दी ไทย Русский e\u0301 \u1100\u1161",
    "emoji": "👨‍👩‍👧 🇺🇸 ❤️ \u200d\ufeff",
    "spaces": "   \n\n  \r\n\t x  ",
}
for name, text in texts.items():
    with open(os.path.join(out, "text_" + name), "wb") as f:
        f.write(text.encode())
with open(os.path.join(out, "text_invalid_utf8"), "wb") as f:
    f.write(b"ab\xff\xc3(\xed\xa0\x80\xf4\x90\x80\x80z")

def added(content, i, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return dict(id=i, content=content, special=special, normalized=normalized, lstrip=lstrip,
                rstrip=rstrip, single_word=single_word)

vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3, "a": 4, "b": 5, "ab": 6, "\u2581a": 7,
         "<0x41>": 8, "c": 9, "abc": 10}
merges = [["a", "b"], "\u2581 a", ["ab", "c"]]
template = {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
llama = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added("<unk>", 0), added("<s>", 1), added("<x>", 11, lstrip=True, rstrip=True),
                     added("ab c", 12, special=False, normalized=True, single_word=True)],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}, {"type": "NFC"}]},
    "pre_tokenizer": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True,
              "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": merges},
    "post_processor": template,
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
}
metaspace = dict(llama, normalizer=None,
                 pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                                "split": True},
                 decoder={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"},
                 truncation={"max_length": 5, "direction": "Left", "strategy": "LongestFirst", "stride": 0})
qwen_pattern = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
byte_vocab = {c: i for i, c in enumerate(["a", "b", "ab", "\u0120", "\u0120a"])}
qwen = {
    "added_tokens": [added("<|im_start|>", 5)],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": qwen_pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "vocab": byte_vocab,
              "merges": [["a", "b"], ["\u0120", "a"]], "ignore_merges": True},
    "post_processor": {"type": "Sequence", "processors": [{"type": "ByteLevel", "trim_offsets": False}]},
    "decoder": {"type": "ByteLevel"},
}
gpt2 = dict(qwen, pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True, "use_regex": True},
            normalizer={"type": "Strip", "strip_left": True, "strip_right": False})
for name, j in {"llama": llama, "metaspace": metaspace, "qwen": qwen, "gpt2": gpt2}.items():
    with open(os.path.join(out, "json_" + name), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
PY

tok_dict="$tok_dir/tokenizer.dict"
{
  for token in '"type"' '"BPE"' '"vocab"' '"merges"' '"added_tokens"' '"content"' '"special"' \
    '"normalized"' '"lstrip"' '"rstrip"' '"single_word"' '"normalizer"' '"pre_tokenizer"' \
    '"post_processor"' '"decoder"' '"Sequence"' '"Prepend"' '"Replace"' '"NFC"' '"Metaspace"' \
    '"Split"' '"ByteLevel"' '"TemplateProcessing"' '"ByteFallback"' '"Fuse"' '"Strip"' \
    '"byte_fallback"' '"fuse_unk"' '"unk_token"' '"prepend_scheme"' '"behavior"' '"Isolated"' \
    '"MergedWithNext"' '"Removed"' '"Contiguous"' '"truncation"' '"max_length"' '<s>' '<img>' \
    '<|u|>' '<|im_start|>' '<0x41>' '\\u2581' '\\ud800' '\xE2\x96\x81' '2147483647' '-1'; do
    printf '"%s"\n' "${token//\"/\\\"}"
  done
} >"$tok_dict"

run_fuzzer "the tokenizer" "$tok_binary" "$tok_dir" "$tok_dict"

# ---- images (fuzz/image_fuzzer.cc): resizing, LLaVA-NeXT, Phi-3.5-V, Qwen2-VL and GME preprocessing ---
img_binary="$outdir/image_fuzzer"
img_dir="$outdir/image"
mkdir -p "$img_dir/seeds" "$img_dir/corpus" "$img_dir/artifacts"
build_fuzzer "$img_binary" fuzz/image_fuzzer.cc csrc/core/image/*.cc csrc/core/json_file.cc csrc/core/util/*.cc -- \
  csrc/core/image/*.h csrc/core/json_file.h csrc/core/errors.h csrc/core/util/*.h
# Seeds: a few size/target/filter headers with pixels, and small configurations.
printf '\x10\x20\x05\x00\x07\x00\x01\x00abcdefgh' >"$img_dir/seeds/noise"
printf '\x00\x00\x00\x00\x00\x00\x00\x02\xff' >"$img_dir/seeds/one_pixel"
printf '\x5f\x03\xc7\x00\x01\x00\x01\x01\x00\x80\xff' >"$img_dir/seeds/tall_to_wide"
printf '{"image_grid_pinpoints": [[28,56],[56,28],[56,56]], "crop_size": {"height": 28, "width": 28}, "size": {"shortest_edge": 28}, "resample": 2}' \
  >"$img_dir/seeds/config"
printf '{"min_pixels": 3136, "max_pixels": 1003520, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}' \
  >"$img_dir/seeds/qwen2_vl_config"
# The family byte (8th) picks Phi-3.5-V (3-5), Qwen2-VL (6-8) and GME (9-11) after the resize.
printf '\x30\x18\x05\x03\x0f\x00\x00\x03abcdefgh' >"$img_dir/seeds/phi3_v"
printf '\x50\x40\x21\x00\x05\x31\x00\x06abcdefgh' >"$img_dir/seeds/qwen2_vl"
printf '\x02\x5f\x27\x11\x00\x00\x01\x09abcdefgh' >"$img_dir/seeds/gme"
img_dict="$img_dir/image.dict"
printf '"image_grid_pinpoints"\n"crop_size"\n"shortest_edge"\n"image_mean"\n"image_std"\n"resample"\n"rescale_factor"\n"patch_size"\n"vision_config"\n"exact_pad"\n"min_pixels"\n"max_pixels"\n"merge_size"\n"temporal_patch_size"\n' >"$img_dict"
run_fuzzer "the image path" "$img_binary" "$img_dir" "$img_dict"
