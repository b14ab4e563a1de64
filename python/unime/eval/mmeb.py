"""MMEB (Massive Multimodal Embedding Benchmark, VLM2Vec) in its official evaluation format.

Each row of a dataset: qry_text, qry_img_path, tgt_text (list), tgt_img_path (list); candidate 0
is the correct one. Texts carry their instruction and the "<|image_1|>" tag verbatim (no chat
template); the tag becomes the model family's image placeholder. Metric: Precision@1 per dataset.
Queries and candidates are de-duplicated by (text, image) before encoding, as the official scorer does.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np

from .data import MalformedRow, RowError, field, find_data_file, read_rows, resolve_image
from .embed import Embedder, Item
from .metrics import precision_at_1

META_TASKS = {
    "Classification": ["ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397", "Place365", "ImageNet-A",
                       "ImageNet-R", "ObjectNet", "Country211"],
    "VQA": ["OK-VQA", "A-OKVQA", "DocVQA", "InfographicsVQA", "ChartQA", "Visual7W", "ScienceQA", "VizWiz", "GQA",
            "TextVQA"],
    "Retrieval": ["VisDial", "CIRR", "VisualNews_t2i", "VisualNews_i2t", "MSCOCO_t2i", "MSCOCO_i2t", "NIGHTS",
                  "WebQA", "FashionIQ", "Wiki-SS-NQ", "OVEN", "EDIS"],
    "Grounding": ["MSCOCO", "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"],
}
# The 16 datasets outside MMEB-train; the other 20 are in distribution.
OUT_OF_DISTRIBUTION = {"Place365", "ImageNet-A", "ImageNet-R", "ObjectNet", "Country211", "ScienceQA", "VizWiz",
                       "GQA", "TextVQA", "FashionIQ", "Wiki-SS-NQ", "OVEN", "EDIS", "RefCOCO", "RefCOCO-Matching",
                       "Visual7W-Pointing"}
ALL_DATASETS = [name for names in META_TASKS.values() for name in names]
HUB_ID = "TIGER-Lab/MMEB-eval"


def meta_task(name: str) -> str:
    for task, names in META_TASKS.items():
        if name in names:
            return task
    return "Other"


def _parse_row(row: dict, image_dir: Optional[str]) -> tuple[Item, list[Item]]:
    qry_text = field(row, "qry_text", "qry")
    qry_image = resolve_image(field(row, "qry_img_path", optional=True, kind=(str, dict)), image_dir)
    tgt_text = field(row, "tgt_text", kind=(list, tuple))
    tgt_image = field(row, "tgt_img_path", kind=(list, tuple), optional=True) or [""] * len(tgt_text)
    if len(tgt_text) != len(tgt_image):
        raise MalformedRow(f"tgt_text has {len(tgt_text)} entries but tgt_img_path has {len(tgt_image)}")
    if not tgt_text:
        raise MalformedRow("no candidates (tgt_text is empty)")
    query = Item(qry_text, qry_image or None, prompt=True)
    candidates = [Item(t, resolve_image(i, image_dir) or None, prompt=True) for t, i in zip(tgt_text, tgt_image)]
    for c in [query, *candidates]:
        if not c.text and c.image is None:
            raise MalformedRow("an input has neither text nor image")
        if not isinstance(c.text, str):
            raise MalformedRow(f"text must be a str, got {type(c.text).__name__}")
    return query, candidates


def load_rows(name: str, data_dir: Optional[str], image_dir: Optional[str], source: str = "local"
              ) -> tuple[list[tuple[str, Item, list[Item]]], list[RowError], str]:
    """(rows as (where, query, candidates), row errors, data file) of one MMEB dataset."""
    if source == "hub":
        import datasets

        table = datasets.load_dataset(HUB_ID, name, split="test")
        iterator = ((f"{HUB_ID}/{name}#{i}", row) for i, row in enumerate(table))
        path = f"{HUB_ID}/{name}"
    else:
        path = find_data_file(data_dir, name)
        if path is None:
            raise FileNotFoundError(f"MMEB dataset {name!r}: no {name}.jsonl / .json / .parquet or {name}/*.parquet "
                                    f"in {data_dir}")
        iterator = read_rows(path)
    rows, errors = [], []
    for where, row in iterator:
        if isinstance(row, RowError):
            errors.append(row)
            continue
        try:
            rows.append((where, *_parse_row(row, image_dir)))
        except MalformedRow as e:
            errors.append(RowError(where, str(e)))
    return rows, errors, path


def evaluate_dataset(embedder: Embedder, name: str, data_dir: Optional[str], image_dir: Optional[str],
                     source: str = "local", task: Optional[str] = None) -> dict[str, Any]:
    """Precision@1 of one dataset; rows whose inputs fail to embed are left out and named. task: the
    meta-task of a dataset outside MMEB's 36 (your own data in its format)."""
    t0 = time.time()
    rows, errors, path = load_rows(name, data_dir, image_dir, source)
    embedder.embed([q for _, q, _ in rows], desc=f"{name} queries")
    embedder.embed([c for _, _, cs in rows for c in cs], desc=f"{name} candidates")
    scores, kept = [], 0
    for where, query, candidates in rows:
        failed = embedder.failure([query, *candidates])
        if failed:
            errors.append(RowError(where, failed))
            continue
        q = embedder.vectors[query.key()]
        scores.append(embedder.matrix(candidates) @ q)
        kept += 1
    p1 = precision_at_1(scores)
    return {
        "suite": "mmeb", "dataset": name, "meta_task": task or meta_task(name),
        "distribution": "OOD" if name in OUT_OF_DISTRIBUTION else ("IND" if name in ALL_DATASETS else "other"),
        "metrics": {"precision@1": p1.value},
        "rows": kept, "candidates_per_row": float(np.mean([len(s) for s in scores])) if scores else 0.0,
        "file": path, "errors": [e.to_dict() for e in errors], "seconds": round(time.time() - t0, 3),
    }


def summarise(results: list[dict]) -> dict[str, float]:
    """The papers' columns: per-meta-task means, IND / OOD means, Overall as the mean over datasets
    (VLM2Vec, UniME-V2, the leaderboard) and as the mean of the meta-task means (UniME v1 Table 1)."""
    def mean(values):
        values = [v for v in values if v == v]
        return float(np.mean(values)) if values else float("nan")

    p1 = {r["dataset"]: r["metrics"]["precision@1"] for r in results}
    out = {}
    for task in META_TASKS:
        out[task] = mean([r["metrics"]["precision@1"] for r in results if r["meta_task"] == task])
    out["IND"] = mean([v for k, v in p1.items() if k in ALL_DATASETS and k not in OUT_OF_DISTRIBUTION])
    out["OOD"] = mean([v for k, v in p1.items() if k in OUT_OF_DISTRIBUTION])
    out["Overall"] = mean(list(p1.values()))
    out["Overall (meta-task mean)"] = mean([out[t] for t in META_TASKS])
    return out
