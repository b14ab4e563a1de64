"""Zero-shot classification from class names and prompt templates (CLIP's protocol).

Each class is the normalised mean of its templates' text embeddings ("a photo of a {}."); an image
is assigned the class whose vector scores highest. Data: a .jsonl / .json / .parquet of
{"image": path, "label": class name or index}, or a folder with one sub-folder of images per class.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Sequence

import numpy as np

from .data import MalformedRow, RowError, field, read_rows, resolve_image
from .embed import Embedder, Item
from .metrics import top_k_accuracy

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _folder_rows(root: str):
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    yield os.path.join(folder, name), {"image": os.path.join(folder, name), "label": label}


def evaluate(embedder: Embedder, name: str, data: str, image_dir: Optional[str] = None, *,
             classnames: Optional[Sequence[str]] = None, templates: Sequence[str] = ("a photo of a {}.",),
             image_instruction: Optional[str] = None, text_instruction: Optional[str] = None,
             ks: tuple[int, ...] = (1, 5)) -> dict[str, Any]:
    t0 = time.time()
    rows = _folder_rows(data) if os.path.isdir(data) else read_rows(data)
    base = image_dir if image_dir is not None else (data if os.path.isdir(data) else os.path.dirname(data))
    samples, errors = [], []
    for where, row in rows:
        if isinstance(row, RowError):
            errors.append(row)
            continue
        try:
            samples.append((where, resolve_image(field(row, "image", kind=(str, dict)), base),
                            field(row, "label", kind=(str, int))))
        except MalformedRow as e:
            errors.append(RowError(where, str(e)))
    names = list(classnames) if classnames is not None else sorted({str(s[2]) for s in samples})
    if not names:
        raise ValueError(f"{data}: no classes (no usable rows; {len(errors)} left out)")
    index = {c: i for i, c in enumerate(names)}
    labelled = []
    for where, image, label in samples:
        i = label if isinstance(label, int) else index.get(label)
        if i is None or not 0 <= i < len(names):
            errors.append(RowError(where, f"label {label!r} is not one of the {len(names)} class names"))
            continue
        labelled.append((where, Item(None, image, image_instruction), i))
    prompts = [[Item(t.format(c) if "{}" in t else t.replace("{label}", c), None, text_instruction)
                for t in templates] for c in names]
    embedder.embed([p for ps in prompts for p in ps], desc=f"{name} classes")
    failed = embedder.failure([p for ps in prompts for p in ps])
    if failed:
        raise ValueError(f"{name}: a class prompt could not be embedded: {failed}")
    classes = np.stack([embedder.matrix(ps).mean(0) for ps in prompts])
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    embedder.embed([it for _, it, _ in labelled], desc=f"{name} images")
    vectors, labels = [], []
    for where, item, label in labelled:
        problem = embedder.failure([item])
        if problem:
            errors.append(RowError(where, problem))
            continue
        vectors.append(embedder.vectors[item.key()])
        labels.append(label)
    if not vectors:
        raise ValueError(f"{data}: no image could be embedded ({len(errors)} left out; first: {errors[:1]})")
    ks = tuple(k for k in ks if k <= len(names))
    acc = top_k_accuracy(np.stack(vectors) @ classes.T, labels, ks)
    return {"suite": "zero_shot", "dataset": name, "metrics": {f"top{k}": acc[k].value for k in ks},
            "images": len(labels), "classes": len(names), "templates": list(templates), "file": os.fspath(data),
            "errors": [e.to_dict() for e in errors], "seconds": round(time.time() - t0, 3)}
