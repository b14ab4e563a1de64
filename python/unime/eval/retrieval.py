"""Image-text retrieval in the Flickr30K / MSCOCO format: each image with several captions.

Rows: {"image": path, "caption": [captions]} (royokong/flickr30k_test and coco_test on the hub;
"captions" or a single str also accepted), or a Karpathy split file (dataset_coco.json /
dataset_flickr30k.json: {"images": [{"filename", "filepath", "split", "sentences": [{"raw"}]}]}).
Scores are caption embeddings against image embeddings. Text->image: each caption's own image must
rank in the top k. Image->text: a hit when any of the image's captions ranks in the top k (the
protocol of UniME's and CLIP's scripts). NDCG@5 for image->text grades every caption of the image
as relevant.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

import numpy as np

from .data import MalformedRow, RowError, field, read_rows, resolve_image
from .embed import Embedder, Item
from .metrics import ndcg_at_k, recall_at_k, recall_at_k_single


def _karpathy_rows(path: str, split: str):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for i, image in enumerate(data["images"]):
        if image.get("split") != split:
            continue
        name = os.path.join(image.get("filepath", ""), image["filename"])
        yield f"{path}[images][{i}]", {"image": name, "caption": [s["raw"] for s in image["sentences"]]}


def load_pairs(data: str, image_dir: Optional[str], split: str = "test"):
    """(images as Items, captions [(text, image index)], row errors)."""
    if data.endswith(".json"):
        with open(data, encoding="utf-8") as f:
            head = f.read(2048)
        rows = _karpathy_rows(data, split) if '"images"' in head else read_rows(data)
    else:
        rows = read_rows(data)
    image_dir = image_dir if image_dir is not None else os.path.dirname(os.path.abspath(data))
    images, captions, errors = [], [], []
    for where, row in rows:
        if isinstance(row, RowError):
            errors.append(row)
            continue
        try:
            image = resolve_image(field(row, "image", "filename", "image_path", kind=(str, dict)), image_dir)
            texts = field(row, "caption", "captions", "sentences", kind=(list, str))
            texts = [texts] if isinstance(texts, str) else texts
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise MalformedRow("captions must be non-empty strings")
        except MalformedRow as e:
            errors.append(RowError(where, str(e)))
            continue
        images.append((where, image))
        captions.append(texts)
    return images, captions, errors


def evaluate(embedder: Embedder, name: str, data: str, image_dir: Optional[str] = None, *,
             image_instruction: Optional[str] = None, text_instruction: Optional[str] = None,
             ks: tuple[int, ...] = (1, 5, 10), split: str = "test") -> dict[str, Any]:
    t0 = time.time()
    images, captions, errors = load_pairs(data, image_dir, split)
    image_items = [Item(None, image, image_instruction) for _, image in images]
    text_items = [[Item(t, None, text_instruction) for t in texts] for texts in captions]
    embedder.embed(image_items, desc=f"{name} images")
    embedder.embed([t for ts in text_items for t in ts], desc=f"{name} captions")
    kept_images, kept_texts, owner = [], [], []
    for (where, _), image, texts in zip(images, image_items, text_items):
        failed = embedder.failure([image, *texts])
        if failed:
            errors.append(RowError(where, failed))
            continue
        for t in texts:
            owner.append(len(kept_images))
            kept_texts.append(t)
        kept_images.append(image)
    if not kept_images:
        raise ValueError(f"{data}: no usable image-caption rows ({len(errors)} left out; first: {errors[:1]})")
    scores = embedder.matrix(kept_texts) @ embedder.matrix(kept_images).T  # (captions, images)
    owner = np.asarray(owner)
    t2i = recall_at_k_single(scores, owner, ks)
    captions_of = [np.flatnonzero(owner == i) for i in range(len(kept_images))]
    i2t = recall_at_k(scores.T, captions_of, ks)
    relevance = np.zeros(scores.T.shape)
    relevance[owner, np.arange(owner.size)] = 1
    ndcg = ndcg_at_k(scores.T, relevance, 5)
    metrics = {f"t2i_R@{k}": t2i[k].value for k in ks}
    metrics.update({f"i2t_R@{k}": i2t[k].value for k in ks})
    metrics["i2t_NDCG@5"] = ndcg.value
    return {"suite": "retrieval", "dataset": name, "metrics": metrics, "images": len(kept_images),
            "captions": len(kept_texts), "file": data, "errors": [e.to_dict() for e in errors],
            "seconds": round(time.time() - t0, 3)}
