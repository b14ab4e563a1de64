"""Embedding an evaluation's inputs once each: de-duplicated, in bounded chunks, failures named.

MMEB and the retrieval sets repeat inputs (one image behind five captions, a label set shared by
every row of a classification dataset); each distinct (text, image, instruction) is embedded once.
Images are decoded chunk by chunk, so memory stays bounded for any dataset size, and resized first
when the protocol asks for a fixed resolution (VLM2Vec's "low" 336x336 / "high" 1344x1344).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Optional

import numpy as np
from tqdm.auto import tqdm

RESOLUTIONS = {"low": 336, "mid": 672, "high": 1344}


@dataclass(frozen=True)
class Item:
    """One input to embed. text is a complete prompt when prompt=True (MMEB's rows, with the
    "<|image_1|>" tag), otherwise plain text for the model's own prompts."""

    text: Optional[str] = None
    image: Any = None  # a path (hashable); decoded images are keyed by id()
    instruction: Optional[str] = None
    prompt: bool = False

    def key(self) -> Hashable:
        image = self.image if isinstance(self.image, (str, type(None))) else id(self.image)
        return (self.text, image, self.instruction, self.prompt)


def resolution_size(resolution: Any) -> Optional[tuple[int, int]]:
    """(width, height) to resize images to, or None to keep them."""
    if resolution is None:
        return None
    if isinstance(resolution, str):
        if resolution not in RESOLUTIONS:
            raise ValueError(f"image_resolution must be one of {sorted(RESOLUTIONS)}, an int or (width, height); "
                             f"got {resolution!r}")
        return RESOLUTIONS[resolution], RESOLUTIONS[resolution]
    if isinstance(resolution, int):
        return resolution, resolution
    width, height = resolution
    return int(width), int(height)


class Embedder:
    """Embeds Items with a unime.Model; remembers every vector and every failure by key."""

    def __init__(self, model, *, batch_size: int = 16, image_size: Optional[tuple[int, int]] = None,
                 num_threads: int = 0, show_progress: Optional[bool] = None, chunk: int = 256):
        self.model = model
        self.batch_size = batch_size
        self.image_size = image_size
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.chunk = chunk
        self.vectors: dict[Hashable, np.ndarray] = {}
        self.failures: dict[Hashable, str] = {}

    def _load(self, image: Any) -> Any:
        if image is None or self.image_size is None:
            return image
        from PIL import Image

        from ..images import load_image

        # VLM2Vec resizes with PIL's default filter (bicubic) before the model's processor.
        return np.asarray(Image.fromarray(load_image(image)).resize(self.image_size, Image.BICUBIC))

    def embed(self, items: list[Item], desc: str = "embedding") -> None:
        """Embeds the items not seen before; afterwards each key is in .vectors or .failures."""
        todo, seen = [], set()
        for item in items:
            k = item.key()
            if k not in self.vectors and k not in self.failures and k not in seen:
                seen.add(k)
                todo.append(item)
        show = self.show_progress if self.show_progress is not None else len(todo) > self.chunk
        with tqdm(total=len(todo), unit="input", desc=desc, disable=not show) as bar:
            for start in range(0, len(todo), self.chunk):
                self._embed_chunk(todo[start:start + self.chunk])
                bar.update(min(self.chunk, len(todo) - start))

    def _embed_chunk(self, chunk: list[Item]) -> None:
        # Plain-text and full-prompt inputs go through encode() separately (texts= vs prompts=).
        for prompt in (False, True):
            group = [it for it in chunk if it.prompt == prompt]
            if not group:
                continue
            images, ok = [], []
            for it in group:
                try:
                    images.append(self._load(it.image))
                    ok.append(it)
                except (OSError, ValueError, TypeError) as e:
                    self.failures[it.key()] = f"image {it.image}: {e}"
            if not ok:
                continue
            texts = [it.text for it in ok]
            kwargs = dict(prompts=texts) if prompt else dict(texts=texts)
            vectors, skipped = self.model.encode(
                images=images, instruction=[it.instruction for it in ok], batch_size=self.batch_size,
                output="numpy", on_error="skip", show_progress=False, num_threads=self.num_threads, **kwargs)
            bad = {s.index: s for s in skipped}
            for i, it in enumerate(ok):
                if i in bad:
                    source, reason = bad[i].source, bad[i].reason
                    self.failures[it.key()] = reason if reason.startswith(source) else f"{source}: {reason}"
                else:
                    self.vectors[it.key()] = vectors[i]

    def failure(self, items: list[Item]) -> Optional[str]:
        """The first failure among these items, or None when all are embedded."""
        for it in items:
            if it.key() in self.failures:
                return self.failures[it.key()]
        return None

    def matrix(self, items: list[Item]) -> np.ndarray:
        return np.stack([self.vectors[it.key()] for it in items]) if items else np.zeros((0, self.model.hidden_size),
                                                                                        np.float32)
