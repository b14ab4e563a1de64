"""unime.encode(): texts, images and image+text pairs to embeddings with a model or a checkpoint path.

The work is Model.encode's: per batch, images are decoded with Pillow (unime.images) and the C++
processor of the model's family builds the batch (prompt, tokens, image preprocessing, placeholder
expansion, length limit, padding) that the C++ model embeds.
"""

from __future__ import annotations

from typing import Any

import torch

from .model import Model


def encode(model: Any, texts: Any = None, images: Any = None, *, dtype: Any = None, device: Any = None, **kwargs):
    """Embeds texts, images, or (text, image) pairs with `model` (a unime.Model or a checkpoint path).

    dtype, device: when `model` is a path, how to load it (default float32 on CPU); a loaded Model
    keeps its own (passing them then is an error). Every other argument is Model.encode's.
    """
    if not isinstance(model, Model):
        model = Model.from_pretrained(model, dtype=dtype if dtype is not None else torch.float32,
                                      device=device if device is not None else "cpu")
    elif dtype is not None or device is not None:
        raise ValueError("dtype/device apply when encode loads the model from a path; this Model is already "
                         f"loaded ({model.dtype} on {model.device})")
    return model.encode(texts, images, **kwargs)


__all__ = ["encode"]
