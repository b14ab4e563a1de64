"""Stage 1's teacher: text embeddings keyed by example id, from a file or from any callable.

UniME distils NV-Embed-v2's offline embeddings; any teacher of any dimension works (the loss compares
in-batch similarity matrices). Files:
  - safetensors with "embeddings" (N, d) and optionally "ids" (N,) int64 (default: row i is id i);
  - .npy (N, d), optionally with ids in a sibling "<name>.ids.npy" (or "ids_path").
Both are memory-mapped, so a teacher file larger than memory costs only the rows a batch reads.
A callable takes a list of texts and returns (n, d) embeddings (NV-Embed-v2, sentence-transformers, an API).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch


class TeacherEmbeddings:
    def __init__(self, embeddings: Any, ids: Optional[Sequence[Any]] = None, source: str = "teacher"):
        self.embeddings = embeddings  # (N, d): a numpy memmap, a safetensors slice or a tensor
        self.source = source
        n = embeddings.shape[0]
        keys = [str(i) for i in (ids if ids is not None else range(n))]
        if len(keys) != n:
            raise ValueError(f"{source}: {len(keys)} ids for {n} embeddings")
        self.row = {k: r for r, k in enumerate(keys)}
        if len(self.row) != n:
            raise ValueError(f"{source}: the ids are not unique")

    @classmethod
    def from_file(cls, path: str | os.PathLike, ids_path: Optional[str] = None) -> "TeacherEmbeddings":
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such teacher embedding file")
        if path.endswith(".npy"):
            emb = np.load(path, mmap_mode="r")
            if emb.ndim != 2:
                raise ValueError(f"{path}: teacher embeddings must be (N, d), got shape {emb.shape}")
            ids_path = ids_path or path[: -len(".npy")] + ".ids.npy"
            ids = np.load(ids_path).tolist() if os.path.exists(ids_path) else None
            return cls(emb, ids, path)
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            f = safe_open(path, framework="pt")  # memory-mapped; slices read only their rows
            if "embeddings" not in f.keys():
                raise ValueError(f"{path}: no tensor 'embeddings' (N, d)")
            emb = f.get_slice("embeddings")
            if len(emb.get_shape()) != 2:
                raise ValueError(f"{path}: teacher embeddings must be (N, d), got shape {emb.get_shape()}")
            ids = f.get_tensor("ids").tolist() if "ids" in f.keys() else None
            return _SafetensorsTeacher(f, emb, ids, path)
        raise ValueError(f"{path}: teacher embeddings must be a .safetensors or .npy file")

    def __len__(self) -> int:
        return len(self.row)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def rows(self, ids: Sequence[str]) -> list[Optional[int]]:
        return [self.row.get(str(i)) for i in ids]

    def lookup(self, ids: Sequence[str]) -> torch.Tensor:
        """(n, d) float32 embeddings of `ids`; KeyError naming the first id not in the file."""
        rows = self.rows(ids)
        for i, r in zip(ids, rows):
            if r is None:
                raise KeyError(f"teacher id {i!r} is not in {self.source}")
        return self._read(rows)

    def _read(self, rows: list[int]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.embeddings[np.asarray(rows)], dtype=np.float32))


class _SafetensorsTeacher(TeacherEmbeddings):
    def __init__(self, handle, embeddings, ids, source):
        self._handle = handle
        self._shape = embeddings.get_shape()
        self._slice = embeddings
        super().__init__(_Shape(self._shape), ids, source)

    @property
    def dim(self) -> int:
        return int(self._shape[1])

    def _read(self, rows: list[int]) -> torch.Tensor:
        return torch.stack([self._slice[r : r + 1][0] for r in rows]).float()


class _Shape:
    def __init__(self, shape):
        self.shape = tuple(shape)


TeacherSource = "TeacherEmbeddings | Callable[[list[str]], torch.Tensor]"


def teacher_embeddings(teacher: Any, ids: Sequence[str], texts: Sequence[str]) -> torch.Tensor:
    """The teacher's (n, d) embeddings of a batch: looked up by id, or computed by the callable."""
    if isinstance(teacher, TeacherEmbeddings):
        return teacher.lookup(ids)
    if callable(teacher):
        out = torch.as_tensor(teacher(list(texts)))
        if out.dim() != 2 or out.shape[0] != len(texts):
            raise ValueError(f"the teacher callable returned shape {tuple(out.shape)} for {len(texts)} texts; "
                             "expected (n, d)")
        return out.float()
    raise TypeError("teacher must be a TeacherEmbeddings (TeacherEmbeddings.from_file) or a callable texts -> (n, d)")


__all__ = ["TeacherEmbeddings", "teacher_embeddings", "Callable"]
