"""Reading and writing safetensors through the C++ core."""

from __future__ import annotations

import os

import torch

from . import _C


def load_safetensors(
    path: str | os.PathLike, *, dtype: torch.dtype | None = None, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Reads every tensor of a .safetensors file or a checkpoint directory (sharded or not).

    Floating tensors are converted to `dtype` when given. Malformed files raise ValueError naming
    the file and tensor; missing files raise FileNotFoundError.
    """
    name = None if dtype is None else str(dtype).removeprefix("torch.")
    return dict(_C.load_safetensors(os.fspath(path), name, str(device)))


def save_safetensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Writes tensors to a safetensors file atomically (temporary file, then rename)."""
    _C.save_safetensors(os.fspath(path), list(tensors.items()), dict(metadata or {}))
