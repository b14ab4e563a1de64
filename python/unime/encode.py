"""unime.encode(): texts, images and image+text pairs to embeddings.

The pipeline per batch: decode images (Pillow, unime.images) -> preprocess in the C++ core
(exact to the Hugging Face processor) -> build each prompt from the model family's template
(csrc/core/prompt) -> tokenize (unime.Tokenizer, BOS from the tokenizer's post-processor) ->
expand each image placeholder to the image's token count -> left-pad -> the model.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch

from . import _C
from .images import SkippedImage, load_images

Instruction = Union[None, str, Sequence[Optional[str]]]


@dataclass
class _Item:
    text: Optional[str]
    image: Any  # anything unime.load_image takes, or None
    instruction: Optional[str]


def _as_list(x: Any) -> tuple[list, bool]:
    """(items, was_single). A str, a path-like or a single image is one item."""
    if x is None:
        return [], False
    if isinstance(x, (list, tuple)):
        return list(x), False
    return [x], True


def _items(texts: Any, images: Any, instruction: Instruction) -> tuple[list[_Item], bool]:
    text_list, single_text = _as_list(texts)
    image_list, single_image = _as_list(images)
    if texts is not None and images is not None and len(text_list) != len(image_list):
        raise ValueError(f"texts ({len(text_list)}) and images ({len(image_list)}) must have the same length: "
                         "item i is the pair (texts[i], images[i]); use None for a missing half")
    n = max(len(text_list), len(image_list))
    if n == 0:
        raise ValueError("nothing to encode: give texts=, images= or both")
    text_list = text_list or [None] * n
    image_list = image_list or [None] * n
    if instruction is None or isinstance(instruction, str):
        instructions = [instruction] * n
    else:
        instructions = list(instruction)
        if len(instructions) != n:
            raise ValueError(f"instruction has {len(instructions)} entries for {n} inputs")
    for i, t in enumerate(text_list):
        if t is not None and not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str or None, got {type(t).__name__}")
        if t is None and image_list[i] is None:
            raise ValueError(f"input {i} has neither a text nor an image")
    items = [_Item(t, im, ins) for t, im, ins in zip(text_list, image_list, instructions)]
    return items, (single_text or single_image) and n == 1


class _Progress:
    """A minimal progress line on stderr (no dependency); tqdm-like enough for notebooks and logs."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled:
            end = "\n" if self.done >= self.total else "\r"
            sys.stderr.write(f"unime.encode: {self.done}/{self.total} inputs{end}")
            sys.stderr.flush()


def encode(
    model: Any,
    texts: Any = None,
    images: Any = None,
    *,
    instruction: Instruction = None,
    batch_size: int = 8,
    show_progress: Optional[bool] = None,
    output: str = "torch",
    normalize: bool = True,
    on_error: str = "raise",
    max_pixels: Optional[int] = None,
    dtype: Any = None,
    device: Any = None,
):
    """Embeds texts, images, or (text, image) pairs with `model` (a unime.Model or a checkpoint path).

    Args:
        texts: a str or a list of str (None entries allowed when images are given).
        images: one image or a list: paths, PIL images, uint8 numpy arrays or tensors (None entries
            allowed when texts are given). texts[i] and images[i] form one input.
        instruction: None (UniME's zero-shot prompts), one str for every input, or one per input;
            inputs with an instruction, and image+text pairs, use the MMEB prompt form.
        batch_size: inputs per forward pass.
        show_progress: a progress line on stderr; default: on when there is more than one batch.
        output: "torch" (a float32 tensor on the model device) or "numpy".
        on_error: "raise" (default): an unreadable image raises, naming its index; "skip": such
            inputs are left out and reported, and the call returns (embeddings, skipped) where
            embeddings has one row per input with NaN rows for the skipped ones.
        max_pixels: cap on decoded image size (checked from the header before decoding); default
            unime.images.DEFAULT_MAX_PIXELS.
        dtype, device: when `model` is a path, how to load it (default float32 on CPU); a loaded
            Model keeps its own (passing them then is an error).

    Returns:
        (N, hidden_size) embeddings (or (hidden_size,) for a single non-list input), L2-normalised
        unless normalize=False; with on_error="skip", a tuple (embeddings, list of SkippedImage).
    """
    from .model import Model  # late: model.py imports this module

    if not isinstance(model, Model):
        model = Model.from_pretrained(model, dtype=dtype if dtype is not None else torch.float32,
                                      device=device if device is not None else "cpu")
    elif dtype is not None or device is not None:
        raise ValueError("dtype/device apply when encode loads the model from a path; this Model is already "
                         f"loaded ({model.dtype} on {model.device})")
    if output not in ("torch", "numpy"):
        raise ValueError(f"output must be 'torch' or 'numpy', got {output!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    items, single = _items(texts, images, instruction)
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError(f"{model.path}: no tokenizer.json next to the checkpoint; encode needs one "
                         "(or call Model.encode_ids with token ids)")
    image_token = model.image_token_id
    load_kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}

    # Decode every image first so that a bad one fails (or is skipped) before any compute.
    image_positions = [i for i, it in enumerate(items) if it.image is not None]
    loaded = load_images([items[i].image for i in image_positions], on_error=on_error, **load_kwargs)
    skipped = [SkippedImage(image_positions[s.index], s.source, s.reason) for s in loaded.skipped]
    arrays = {image_positions[j]: arr for j, arr in zip(loaded.indices, loaded.images)}
    keep = [i for i, it in enumerate(items) if it.image is None or i in arrays]

    out = torch.full((len(items), model.hidden_size), math.nan, dtype=torch.float32, device=model.device)
    batches = [keep[k : k + batch_size] for k in range(0, len(keep), batch_size)]
    progress = _Progress(len(keep), show_progress if show_progress is not None else len(batches) > 1)
    for batch in batches:
        out[batch] = _encode_batch(model, tokenizer, image_token, [items[i] for i in batch],
                                   [arrays.get(i) for i in batch], normalize).float()
        progress.update(len(batch))

    result: Any = out[0] if single else out
    if output == "numpy":
        result = result.cpu().numpy()
    return (result, skipped) if on_error == "skip" else result


def _encode_batch(model, tokenizer, image_token, items: list[_Item], arrays: list, normalize: bool) -> torch.Tensor:
    input_ids, mask, images = prepare_batch(model, tokenizer, image_token, items, arrays)
    with torch.inference_mode():
        return model.encode_ids(input_ids, mask, images=images, normalize=normalize)


def _pad_id(model, tokenizer) -> int:
    """The id padding positions hold (they are masked, so only the ids differ): the checkpoint's
    pad_token_id, else the tokenizer's <pad>, else 0; as the Hugging Face processor pads."""
    config = model.config
    for source in (config, config.get("text_config") or {}):
        if isinstance(source.get("pad_token_id"), int):
            return source["pad_token_id"]
    pad = tokenizer.token_to_id("<pad>")
    return pad if pad is not None else 0


def prepare_batch(model, tokenizer, image_token, items: list[_Item], arrays: list):
    """(input_ids (B, L) left-padded, attention_mask, images) for a batch: what the model receives.
    Exposed for tests that compare token ids and pixels with the Hugging Face processor."""
    prompts = [_C.build_prompt(model.model_type, it.text, arr is not None, it.instruction)
               for it, arr in zip(items, arrays)]
    ids = tokenizer.encode_batch(prompts, add_special_tokens=True)
    image_arrays = [a for a in arrays if a is not None]
    images = []
    if image_arrays:
        processed = _C.llava_next_preprocess_batch(image_arrays, model.image_config, 0)
        images = [(pixels, int(a.shape[0]), int(a.shape[1])) for (pixels, _), a in zip(processed, image_arrays)]
        counts = iter(layout["num_image_tokens"] for _, layout in processed)
        for row, arr in enumerate(arrays):
            if arr is None:
                continue
            where = [k for k, t in enumerate(ids[row]) if t == image_token]
            if len(where) != 1:
                raise ValueError(f"prompt {prompts[row]!r} tokenized to {len(where)} image tokens (id {image_token}); "
                                 "the tokenizer must have the image placeholder as one added token")
            k = where[0]
            ids[row] = ids[row][:k] + [image_token] * next(counts) + ids[row][k + 1 :]
    length = max(map(len, ids))
    input_ids = torch.full((len(ids), length), _pad_id(model, tokenizer), dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, seq in enumerate(ids):  # left padding, as UniME evaluates
        input_ids[row, length - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, length - len(seq) :] = 1
    return input_ids, mask, images


__all__ = ["encode"]
