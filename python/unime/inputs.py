"""What encode() accepts, normalised: texts, images and instructions as parallel lists.

A text is a str; an image is anything unime.load_image takes (a path, a PIL image, a uint8 array or
tensor); texts[i] and images[i] form input i; an instruction is one str for every input or one per
input. Inputs that fail (an unreadable image, a text over the length limit) are named by index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

Instruction = Union[None, str, Sequence[Optional[str]]]


@dataclass
class SkippedInput:
    """An input encode(on_error="skip") left out."""

    index: int  # position in the inputs
    source: str  # the image's path or description, or "text"
    reason: str  # the error message


def _as_list(x: Any) -> tuple[list, bool]:
    """(items, was_single). A str, a path-like or a single image is one item."""
    if x is None:
        return [], False
    if isinstance(x, (list, tuple)):
        return list(x), False
    return [x], True


def normalize_inputs(texts: Any, images: Any, instruction: Instruction,
                     prompts: Optional[Sequence[Optional[str]]] = None) -> tuple[list, list, list, bool]:
    """(texts, images, instructions, single): parallel lists with None for a missing part, and
    whether the caller gave one non-list input (encode then returns one vector). With `prompts`
    (one complete prompt per input) texts must be None."""
    if prompts is not None:
        if texts is not None:
            raise ValueError("give texts= or prompts=, not both")
        prompts = list(prompts)
        texts = [None] * len(prompts)
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
        if t is None and image_list[i] is None and (prompts is None or prompts[i] is None):
            raise ValueError(f"input {i} has neither a text nor an image")
    return text_list, image_list, instructions, (single_text or single_image) and n == 1


def describe(x: Any) -> str:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    return type(x).__name__


def split_dict_inputs(texts: Any, images: Any) -> tuple[Any, Any]:
    """sentence-transformers' multimodal form: {"text": ..., "image": ...} per input (either key may be
    absent), one dict or a list of them, as `texts`. Returns (texts, images) as parallel lists."""
    dicts = [texts] if isinstance(texts, dict) else texts
    if not (isinstance(dicts, (list, tuple)) and dicts and all(isinstance(d, dict) for d in dicts)):
        return texts, images
    if images is not None:
        raise ValueError("with {'text': ..., 'image': ...} inputs, give the images inside the dicts, not images=")
    for i, d in enumerate(dicts):
        unknown = sorted(set(d) - {"text", "image"})
        if unknown:
            raise ValueError(f"input {i}: unknown key(s) {unknown}; an input dict has 'text' and/or 'image'")
    text_list = [d.get("text") for d in dicts]
    image_list = [d.get("image") for d in dicts]
    if isinstance(texts, dict):  # one input: one vector back
        return text_list[0], image_list[0]
    return text_list, image_list
