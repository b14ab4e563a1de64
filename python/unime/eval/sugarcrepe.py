"""SugarCrepe: does the image score its true caption above a hard negative one?

Seven subsets, one file each (replace_obj/att/rel, swap_obj/att, add_obj/att .json): an object of
items {"filename", "caption", "negative_caption"} keyed by id; the images are COCO val2017. An item
is correct when cos(image, caption) > cos(image, negative_caption), strictly. Reported as accuracy
per subset and the papers' Replace / Swap / Add means.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

import numpy as np

from .data import MalformedRow, RowError, field, find_data_file, read_rows, resolve_image
from .embed import Embedder, Item
from .metrics import pairwise_accuracy

SUBSETS = ["replace_obj", "replace_att", "replace_rel", "swap_obj", "swap_att", "add_obj", "add_att"]
GROUPS = {"Replace": SUBSETS[:3], "Swap": SUBSETS[3:5], "Add": SUBSETS[5:]}


def evaluate_subset(embedder: Embedder, subset: str, data_dir: str, image_dir: str, *,
                    image_instruction: Optional[str] = None, text_instruction: Optional[str] = None
                    ) -> dict[str, Any]:
    t0 = time.time()
    path = find_data_file(data_dir, subset)
    if path is None:
        raise FileNotFoundError(f"SugarCrepe subset {subset!r}: no {subset}.json / .jsonl in {data_dir}")
    items, errors = [], []
    for where, row in read_rows(path):
        if isinstance(row, RowError):
            errors.append(row)
            continue
        try:
            image = resolve_image(field(row, "filename", "image", kind=(str, dict)), image_dir)
            pos, neg = field(row, "caption"), field(row, "negative_caption")
        except MalformedRow as e:
            errors.append(RowError(where, str(e)))
            continue
        items.append((where, Item(None, image, image_instruction), Item(pos, None, text_instruction),
                      Item(neg, None, text_instruction)))
    embedder.embed([it[1] for it in items], desc=f"{subset} images")
    embedder.embed([t for it in items for t in it[2:]], desc=f"{subset} captions")
    pos_scores, neg_scores = [], []
    for where, image, pos, neg in items:
        failed = embedder.failure([image, pos, neg])
        if failed:
            errors.append(RowError(where, failed))
            continue
        v = embedder.vectors[image.key()]
        pos_scores.append(float(embedder.vectors[pos.key()] @ v))
        neg_scores.append(float(embedder.vectors[neg.key()] @ v))
    acc = pairwise_accuracy(pos_scores, neg_scores)
    return {"suite": "sugarcrepe", "dataset": subset, "metrics": {"accuracy": acc.value}, "items": acc.scored,
            "file": os.fspath(path), "errors": [e.to_dict() for e in errors], "seconds": round(time.time() - t0, 3)}


def summarise(results: list[dict]) -> dict[str, float]:
    acc = {r["dataset"]: r["metrics"]["accuracy"] for r in results}
    return {group: float(np.mean([acc[s] for s in subsets if s in acc]))
            for group, subsets in GROUPS.items() if any(s in acc for s in subsets)}
