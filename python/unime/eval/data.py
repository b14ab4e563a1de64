"""Reading evaluation rows from the official file formats, one bad row at a time.

Rows come from .jsonl (one JSON object per line), .json (a list of objects, or an object of objects
keyed by id as SugarCrepe ships them) or .parquet (what the Hugging Face hub serves, e.g. MMEB-eval).
A row that cannot be read or lacks a field is reported as a RowError naming its file and line (or
key, or row number) and the evaluation goes on without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator


@dataclass
class RowError:
    """A row left out of an evaluation, and why."""

    where: str  # "file:line", "file[key]" or "file#row"
    message: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _object_or_error(where: str, row: Any) -> dict | RowError:
    return row if isinstance(row, dict) else RowError(where, f"expected an object, got {type(row).__name__}")


class MalformedRow(ValueError):
    """Raised by a row parser for a row it cannot use; the reader turns it into a RowError."""


def read_rows(path: str | os.PathLike) -> Iterator[tuple[str, dict | RowError]]:
    """Yields (where, row) for each row of a .jsonl / .json / .parquet file; a row that is not a
    JSON object comes back as a RowError in place of the dict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for i, row in enumerate(table.to_pylist()):
            yield f"{path}#{i}", row
        return
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, row in items:
            where = f"{path}[{key}]"
            yield where, _object_or_error(where, row)
        return
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield where, RowError(where, f"not valid JSON ({e.msg}; column {e.colno})")
                continue
            yield where, _object_or_error(where, row)


def field(row: dict, *names: str, kind: type | tuple = str, optional: bool = False) -> Any:
    """The first of `names` present in the row, checked to be of `kind`; MalformedRow otherwise."""
    for name in names:
        if name in row and row[name] is not None:
            value = row[name]
            if not isinstance(value, kind):
                kinds = kind if isinstance(kind, tuple) else (kind,)
                raise MalformedRow(f"field {name!r} must be {' or '.join(k.__name__ for k in kinds)}, "
                                   f"got {type(value).__name__}")
            return value
    if optional:
        return None
    raise MalformedRow(f"missing field {' / '.join(repr(n) for n in names)}")


def resolve_image(image: Any, image_dir: str | None) -> Any:
    """An image field as encode() takes it: a path joined to image_dir, or the decoded image a hub
    dataset row carries ({"bytes": ...} or a PIL image)."""
    if isinstance(image, dict) and image.get("bytes") is not None:
        import io

        from PIL import Image

        return Image.open(io.BytesIO(image["bytes"]))
    if isinstance(image, dict) and image.get("path"):
        image = image["path"]
    if isinstance(image, str):
        if not image:
            return None
        return image if os.path.isabs(image) or image_dir is None else os.path.join(image_dir, image)
    return image


def find_data_file(data_dir: str, name: str) -> str | None:
    """A dataset's file under data_dir: NAME.jsonl / .json / .parquet, or NAME/*.parquet (the hub's
    layout, e.g. MMEB-eval/ImageNet-1K/test-00000-of-00001.parquet)."""
    for ext in (".jsonl", ".json", ".parquet"):
        candidate = os.path.join(data_dir, name + ext)
        if os.path.isfile(candidate):
            return candidate
    folder = os.path.join(data_dir, name)
    if os.path.isdir(folder):
        files = sorted(f for f in os.listdir(folder) if f.endswith((".parquet", ".jsonl")))
        if files:
            return os.path.join(folder, files[0])
    return None
