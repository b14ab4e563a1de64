"""Checks and describes a unime binary wheel (tools/build_wheel.sh runs it; needs pyelftools, which
auditwheel brings).

    python tools/wheel_info.py WHEEL [--torch VERSION]

Prints the wheel's size and tags, its torch requirement, and for each shared object its NEEDED
libraries, RUNPATH and the CUDA architectures of its kernels (cubins and PTX in .nv_fatbin). Exits 1,
saying why, when: --torch is given and the wheel's requirement is not exactly torch==VERSION (the
public part of the build torch's version), the compiled module did not record that torch, a module's
RUNPATH is not $ORIGIN/../torch/lib, or a library was copied into the wheel (torch's and the CUDA
runtime's must be left to the torch wheel).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import struct
import sys
import zipfile

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

RUNPATH = "$ORIGIN/../torch/lib"
FATBIN_MAGIC = 0xBA55ED50


def requirement_name(req: str) -> str:
    return re.split(r"[\s=<>!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")


def cuda_archs(elf: ELFFile) -> list[str]:
    """sm_XY of each cubin ('elf') and PTX entry in the .nv_fatbin section, in order, deduplicated."""
    section = elf.get_section_by_name(".nv_fatbin")
    if section is None:
        return []
    data, pos, seen = section.data(), 0, []
    while pos + 16 <= len(data):
        magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            break
        entry, end = pos + header_size, pos + header_size + fat_size
        while entry < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            name = f"sm_{arch} {'PTX' if kind == 1 else 'cubin'}"
            if name not in seen:
                seen.append(name)
            entry += entry_header + payload
        pos = end
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel")
    parser.add_argument("--torch", help="the build torch's version: the wheel must require exactly torch==it")
    args = parser.parse_args()

    problems = []
    size = os.path.getsize(args.wheel)
    print(f"wheel: {os.path.basename(args.wheel)}  {size / 2**20:.2f} MiB ({size} bytes)")
    with zipfile.ZipFile(args.wheel) as z:
        names = z.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        wheel_file = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        reqs = [line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")]
        tags = [line.split(":", 1)[1].strip() for line in z.read(wheel_file).decode().splitlines()
                if line.startswith("Tag:")]
        print(f"tags: {', '.join(tags)}")
        base = [r for r in reqs if "extra ==" not in r]
        print(f"requires: {', '.join(base)}")
        torch_reqs = [r for r in base if requirement_name(r) == "torch"]
        if args.torch is not None:
            want = args.torch.split("+")[0]
            if torch_reqs != [f"torch=={want}"]:
                problems.append(f"the wheel requires {torch_reqs or 'no torch'} but was built against torch "
                                f"{args.torch}: make pyproject.toml's dependency torch=={want}, or build with the "
                                f"torch it names")
            marker = next((n for n in names if n.endswith("unime/_torch_version.txt")), None)
            recorded = z.read(marker).decode().strip() if marker else None
            if recorded is None or recorded.split("+")[0] != want:
                problems.append(f"unime/_torch_version.txt records {recorded!r}, not torch {args.torch}")
        grafted = sorted({n.split("/")[0] for n in names if re.match(r"[^/]+\.libs/", n)})
        if grafted:
            problems.append(f"libraries were copied into the wheel ({', '.join(grafted)}): "
                            f"{[n for n in names if n.split('/')[0] in grafted]}")
        for name in names:
            if not re.search(r"\.so(\.|$)", name):
                continue
            elf = ELFFile(io.BytesIO(z.read(name)))
            dyn = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
            needed = [t.needed for t in dyn.iter_tags("DT_NEEDED")] if dyn else []
            runpath = [t.runpath for t in dyn.iter_tags("DT_RUNPATH")] + [t.rpath for t in dyn.iter_tags("DT_RPATH")]
            archs = cuda_archs(elf)
            print(f"{name}: {z.getinfo(name).file_size / 2**20:.2f} MiB")
            print(f"  NEEDED: {' '.join(needed)}")
            print(f"  RUNPATH: {':'.join(runpath) or '(none)'}")
            print(f"  CUDA kernels: {', '.join(archs) if archs else 'none (CPU build)'}")
            if name.split("/")[-1].startswith("_C.") and runpath != [RUNPATH]:
                problems.append(f"{name}: RUNPATH {runpath}, expected [{RUNPATH!r}]")
    for p in problems:
        print(f"wheel_info: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
