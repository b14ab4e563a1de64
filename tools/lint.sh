#!/usr/bin/env bash
# Style checks of the whole tree: clang-format 14 (.clang-format) on the C++ sources, ruff (pinned in
# requirements.txt, configured in pyproject.toml) on the Python. Fails listing what differs.
# `bash tools/lint.sh --fix` rewrites instead of checking.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
[ "${1:-}" = "--fix" ] && fix=1
# The generated Unicode tables (tools/gen_unicode_tables.py) are left as generated.
mapfile -t cpp < <(git ls-files 'csrc/*.cc' 'csrc/*.h' 'csrc/*.cu' 'tests/cpp/*.cc' 'fuzz/*.cc' 'examples/cpp/*.cc' |
                   grep -v 'csrc/core/tokenizer/unicode_tables.cc')
if ((fix)); then
  clang-format-14 -i "${cpp[@]}"
  .venv/bin/ruff check --fix python tests benchmarks examples tools
  exit 0
fi
echo "lint: clang-format-14 on ${#cpp[@]} C++ files"
clang-format-14 --dry-run --Werror "${cpp[@]}"
echo "lint: ruff $(.venv/bin/ruff --version | cut -d' ' -f2)"
.venv/bin/ruff check python tests benchmarks examples tools
