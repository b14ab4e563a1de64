"""The fingerprint of the model that made a set of embeddings: an index or an evaluation run records it,
and loading an index with another model is refused.

It hashes what fixes the vectors and does not depend on how the weights were loaded (dtype, device):
the checkpoint's config.json and tokenizer files, each safetensors file's header (names, shapes,
dtypes) and samples of its data spread across the file, and samples of the LoRA adapters attached
in memory (rounded to bfloat16, so an adapter trained in fp32 and loaded in bf16 agrees). Reading
samples instead of every byte keeps it instant for a 7B checkpoint; two fine-tunes of one base
differ in nearly every weight, so samples tell them apart.
"""

from __future__ import annotations

import glob
import hashlib
import os
import struct
from typing import Any

_SAMPLES_PER_FILE = 64  # evenly spaced 4 KiB reads of each weights file's data
_SAMPLE_BYTES = 4096
_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
          "processor_config.json", "adapter_config.json")


def _hash_safetensors(h: Any, path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        h.update(f.read(header_len))  # names, dtypes, shapes, offsets
        start = 8 + header_len
        data = size - start
        for i in range(_SAMPLES_PER_FILE):
            f.seek(start + data * i // _SAMPLES_PER_FILE)
            h.update(f.read(_SAMPLE_BYTES))


def checkpoint_digest(path: str) -> str:
    """sha256 (hex) over a checkpoint directory's config, tokenizer and sampled weights."""
    h = hashlib.sha256()
    for name in _FILES:
        file = os.path.join(path, name)
        if os.path.isfile(file):
            h.update(name.encode())
            with open(file, "rb") as f:
                h.update(f.read())
    for file in sorted(glob.glob(os.path.join(path, "*.safetensors"))):
        h.update(os.path.basename(file).encode())
        _hash_safetensors(h, file)
    return h.hexdigest()


def model_fingerprint(model: Any) -> str:
    """"<model_type>-<16 hex digits>" for a unime.Model (its checkpoint plus attached LoRA weights)."""
    import torch

    h = hashlib.sha256(checkpoint_digest(model.path).encode())
    recipe = getattr(model, "recipe", "default")
    if recipe != "default":  # the same weights embed differently under another recipe
        h.update(f"recipe={recipe}".encode())
    for name, tensor in model.lora_parameters():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        sample = flat[::step].to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes()
        h.update(name.encode())
        h.update(sample)
    return f"{model.model_type}-{h.hexdigest()[:16]}"
