"""The encoding engine behind Model.encode.

Inputs go through in windows of `batch_size`. A worker thread decodes a window's images (Pillow
releases the GIL) and the C++ processor builds its batch (prompts, tokens, image preprocessing;
also without the GIL) while the model embeds the previous window, so preprocessing overlaps
compute. A window's rows are then sorted by cost, their real tokens (image tokens included), and
run in sub-batches filled up to a token budget: short texts share one large forward pass, a long
document or a large image goes with few others, and memory per forward pass stays bounded whatever
the mix. The model computes on real tokens only (packed), so sorting saves no padding work; the
budget is what bounds memory and keeps matrix multiplications large. Outputs land in input order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from .images import decode_each
from .inputs import SkippedInput, describe

# Real tokens per forward pass by default: large enough that matrix multiplications run near their
# peak on CPU and GPU, small enough that a 7B model's activations stay under a gigabyte.
DEFAULT_MAX_BATCH_TOKENS = 16384


def plan_batches(lengths: Sequence[int], max_rows: int, max_tokens: Optional[int]) -> list[list[int]]:
    """Rows grouped into forward passes: longest first, each pass up to max_rows rows and max_tokens
    real tokens (a row longer than the budget runs alone). Returns positions into `lengths`."""
    order = sorted(range(len(lengths)), key=lambda r: -lengths[r])
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for r in order:
        if current and (len(current) >= max_rows or (max_tokens and tokens + lengths[r] > max_tokens)):
            batches.append(current)
            current, tokens = [], 0
        current.append(r)
        tokens += lengths[r]
    if current:
        batches.append(current)
    return batches


@dataclass
class Window:
    """One window of inputs, processed: `keep[r]` is the input index of the batch's input r."""

    count: int  # inputs in the window
    keep: list[int]
    batch: Any = None  # _C.Batch, or None when every input failed
    skipped: list[SkippedInput] = field(default_factory=list)


@dataclass
class EncodeJob:
    """The normalised arguments of one Model.encode call."""

    texts: list
    images: list
    instructions: list
    prompts: Optional[list]
    max_pixels: int
    raise_errors: bool
    options: dict


def prepare_window(core: Any, job: EncodeJob, index: list[int]) -> Window:
    """Decodes the images of inputs `index` and builds their batch; bad inputs are raised (naming the
    input) or recorded as skipped."""
    arrays, keep, skipped = [], [], []
    decoded = decode_each([job.images[i] for i in index], max_pixels=job.max_pixels,
                          num_threads=job.options["num_threads"])
    for i, image in zip(index, decoded):
        if isinstance(image, Exception):
            if job.raise_errors:
                raise type(image)(f"image {i} ({describe(job.images[i])}): {image}") from image
            skipped.append(SkippedInput(i, describe(job.images[i]), str(image)))
            continue
        arrays.append(image)
        keep.append(i)
    window = Window(len(index), keep, skipped=skipped)
    if keep:
        prompts = None if job.prompts is None else [job.prompts[i] for i in keep]
        window.batch = core.process([job.texts[i] for i in keep], arrays, [job.instructions[i] for i in keep],
                                    prompts, **job.options)
        for row, message in window.batch.errors:
            i = keep[row]
            source = describe(job.images[i]) if job.images[i] is not None else "text"
            window.skipped.append(SkippedInput(i, source, message))
    return window


def windows(prepare: Callable[[list[int]], Window], n: int, size: int, prefetch: bool) -> Iterator[Window]:
    """prepare(index) for consecutive windows of `size` inputs, in order; with prefetch the next
    window is prepared on a worker thread while the caller works on the current one."""
    starts = range(0, n, size)
    if not prefetch:
        for start in starts:
            yield prepare(list(range(start, min(n, start + size))))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unime-preprocess") as pool:
        pending = None
        for start in starts:
            future = pool.submit(prepare, list(range(start, min(n, start + size))))
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def encode_window(core: Any, window: Window, out: torch.Tensor, *, max_rows: int, max_tokens: Optional[int],
                  normalize: bool) -> None:
    """Embeds a prepared window into the rows of `out` its inputs own, in token-budget sub-batches."""
    batch = window.batch
    if batch is None or len(batch) == 0:
        return
    plan = plan_batches(batch.lengths, max_rows, max_tokens)
    with torch.inference_mode():
        for rows in plan:
            sub = batch if len(plan) == 1 else batch.select(rows)
            emb = core.encode_batch(sub, normalize)
            out[[window.keep[r] for r in sub.rows]] = emb.float()
