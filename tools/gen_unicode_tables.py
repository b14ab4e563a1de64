#!/usr/bin/env python3
"""Generates csrc/core/tokenizer/unicode_tables.cc: the Unicode data the tokenizer needs.

    python3 tools/gen_unicode_tables.py > csrc/core/tokenizer/unicode_tables.cc

Sources, each matching what Hugging Face tokenizers 0.21 uses, so that ids agree:
  - general categories (\\p{L}, \\p{N}) from the PyPI package unicodedata2==16.0.0: Unicode 16.0,
    the version of the Oniguruma regex engine that tokenizers 0.21 runs its Split patterns with
    (checked: Kirat Rai, new in 16.0, are letters there; Sidetic, new in 17.0, are not);
  - White_Space and Alphabetic (for \\w) from the UCD files of Debian's unicode-data package
    (/usr/share/unicode: PropList.txt, DerivedCoreProperties.txt);
  - NFC/NFD data (combining classes, canonical decompositions, primary composites) from
    unicodedata, restricted to code points assigned by Unicode 9.0 (DerivedAge.txt): tokenizers
    normalises with the unicode-normalization-alignments crate, whose tables are Unicode 9.0, so a
    mark added later (e.g. U+0D3B) has class 0 there and is not reordered.
Tables: per-code-point flags and combining classes (two-stage lookups), full canonical
decompositions (Hangul is algorithmic), and canonical compositions (a pair is listed only if NFC
composes it, which leaves out composition exclusions).

    sudo apt-get install unicode-data; pip install unicodedata2==16.0.0   # once
    python3 tools/gen_unicode_tables.py > csrc/core/tokenizer/unicode_tables.cc
"""

import sys
import unicodedata

import unicodedata2  # categories of Unicode 16.0 (pip install unicodedata2==16.0.0)

CATEGORY_VERSION = "16.0.0"
if unicodedata2.unidata_version != CATEGORY_VERSION:
    sys.exit(f"need unicodedata2 with Unicode {CATEGORY_VERSION}, got {unicodedata2.unidata_version}")

MAX_CP = 0x110000
BLOCK = 256
UCD = "/usr/share/unicode"
NFC_AGE = (9, 0)  # Unicode version of tokenizers' normalisation tables

FLAG_LETTER, FLAG_NUMBER, FLAG_SPACE, FLAG_NFC, FLAG_ALPHABETIC, FLAG_DECOMPOSES, FLAG_WORD = 1, 2, 4, 8, 16, 32, 64


def read_ucd_ranges(name):
    """{value: set of code points} from a UCD file of "XXXX..YYYY ; Value # comment" lines."""
    out = {}
    with open(f"{UCD}/{name}", encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cps, value = (x.strip() for x in line.split(";")[:2])
            lo, _, hi = cps.partition("..")
            out.setdefault(value, set()).update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return out


WHITE_SPACE = read_ucd_ranges("PropList.txt")["White_Space"]
ALPHABETIC = read_ucd_ranges("DerivedCoreProperties.txt")["Alphabetic"]
IN_NFC_AGE = set()
for version, cps in read_ucd_ranges("DerivedAge.txt").items():
    if tuple(int(x) for x in version.split(".")) <= NFC_AGE:
        IN_NFC_AGE |= cps


def is_hangul_syllable(cp):
    return 0xAC00 <= cp < 0xAC00 + 11172


def canonical_decomposition(cp):
    """Full canonical decomposition of one code point (recursive), or None if it is itself."""
    text = unicodedata.decomposition(chr(cp))
    if not text or text.startswith("<"):
        return None
    out = []
    for part in text.split():
        sub = int(part, 16)
        rec = canonical_decomposition(sub)
        out.extend(rec if rec else [sub])
    return out


def two_stage(values):
    """(stage1, blocks): stage1[cp >> 8] indexes a deduplicated 256-entry block."""
    blocks, index, stage1 = [], {}, []
    for start in range(0, MAX_CP, BLOCK):
        block = tuple(values[start : start + BLOCK])
        if block not in index:
            index[block] = len(blocks)
            blocks.append(block)
        stage1.append(index[block])
    return stage1, blocks


def emit_array(out, ctype, name, values, per_line=16):
    out.append(f"const {ctype} {name}[{len(values)}] = {{")
    for i in range(0, len(values), per_line):
        out.append("    " + ", ".join(str(v) for v in values[i : i + per_line]) + ",")
    out.append("};")


def main():
    flags = [0] * MAX_CP
    ccc = [0] * MAX_CP
    decomps = {}
    compositions = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        cat = unicodedata2.category(ch)
        f = 0
        if cat[0] == "L":
            f |= FLAG_LETTER
        if cat[0] == "N":
            f |= FLAG_NUMBER
        if cp in WHITE_SPACE:
            f |= FLAG_SPACE
        if cp in ALPHABETIC:
            f |= FLAG_ALPHABETIC
        # \\w of Rust's regex crate (UTS #18 word characters), used for single_word.
        if cp in ALPHABETIC or cat in ("Mn", "Mc", "Me", "Nd", "Pc") or cp in (0x200C, 0x200D):
            f |= FLAG_WORD
        flags[cp] = f
        if cp not in IN_NFC_AGE:
            continue
        ccc[cp] = unicodedata.combining(ch)
        if ccc[cp] != 0 or unicodedata.normalize("NFC", ch) != ch:
            flags[cp] |= FLAG_NFC
        if not is_hangul_syllable(cp):
            d = canonical_decomposition(cp)
            if d:
                decomps[cp] = d
                flags[cp] |= FLAG_DECOMPOSES
                raw = unicodedata.decomposition(ch).split()
                if len(raw) == 2 and unicodedata.normalize("NFC", chr(int(raw[0], 16)) + chr(int(raw[1], 16))) == ch:
                    compositions.append((int(raw[0], 16), int(raw[1], 16), cp))
    # A code point that composes with a preceding starter may change NFC of a string even if it is
    # NFC on its own (NFC_Quick_Check=Maybe).
    for first, second, _ in compositions:
        flags[second] |= FLAG_NFC
    # Hangul jamo V and T compose algorithmically with a preceding L or LV syllable.
    for cp in list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3)):
        flags[cp] |= FLAG_NFC

    out = [
        "// GENERATED by tools/gen_unicode_tables.py; do not edit. Sources: categories of Unicode "
        f"{CATEGORY_VERSION} (unicodedata2),",
        f"// decompositions and combining classes from Python's unicodedata ({unicodedata.unidata_version}),",
        f"// the UCD files of {UCD} (DerivedAge, PropList, DerivedCoreProperties); NFC data as of "
        f"Unicode {NFC_AGE[0]}.{NFC_AGE[1]}.",
        "// Regenerate: python3 tools/gen_unicode_tables.py > csrc/core/tokenizer/unicode_tables.cc",
        "// clang-format off",
        '#include "core/tokenizer/unicode.h"',
        "",
        "namespace unime::core::unicode_data {",
        "",
        f'const char kUnicodeVersion[] = "{unicodedata.unidata_version}";',
        "",
    ]
    for name, values in (("Flags", flags), ("Ccc", ccc)):
        stage1, blocks = two_stage(values)
        emit_array(out, "uint16_t", f"k{name}Stage1", stage1)
        emit_array(out, "uint8_t", f"k{name}Blocks", [v for b in blocks for v in b], per_line=32)
        out.append("")

    pool, entries = [], []
    for cp in sorted(decomps):
        entries.append((cp, len(pool), len(decomps[cp])))
        pool.extend(decomps[cp])
    out.append(f"const size_t kDecompositionCount = {len(entries)};")
    emit_array(out, "uint32_t", "kDecompositionCodePoints", [e[0] for e in entries])
    emit_array(out, "uint16_t", "kDecompositionOffsets", [e[1] for e in entries])
    emit_array(out, "uint8_t", "kDecompositionLengths", [e[2] for e in entries], per_line=32)
    emit_array(out, "uint32_t", "kDecompositionPool", pool)
    out.append("")
    compositions.sort()
    out.append(f"const size_t kCompositionCount = {len(compositions)};")
    emit_array(out, "uint64_t", "kCompositionKeys", [(a << 21) | b for a, b, _ in compositions], per_line=8)
    emit_array(out, "uint32_t", "kCompositionValues", [c for _, _, c in compositions])
    out.append("")
    out.append("}  // namespace unime::core::unicode_data")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
