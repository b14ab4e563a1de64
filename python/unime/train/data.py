"""Training data for the three stages, from the formats the field uses.

- Stage 1 (distill): texts with ids; the teacher's embedding of each comes from a TeacherEmbeddings
  file keyed by the same ids, or from a callable.
- Stage 2 (instruct): MMEB-train rows (TIGER-Lab/MMEB-train: ``qry``, ``qry_image_path``,
  ``pos_text``, ``pos_image_path``, optional ``neg_text``, ``neg_image_path``), whose texts carry
  the instruction and Phi's ``<|image_1|>`` tag, used verbatim with the tag replaced per backbone
  (as VLM2Vec and UniME do); jsonl with an image folder, or a Hugging Face ``datasets.Dataset``.
- UniME-V2 (judge): rows of ``train_data_*_scores.json`` (``query_text``, ``query_image``,
  ``pos_text``, ``pos_image``, ``query_pos_scores``, ``hard_negatives`` [[text, image], ...],
  ``hard_negatives_scores``): the positive and the first k negatives with their judge scores.

A dataset is any sequence of Example; images stay paths until a step decodes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

IMAGE_TAG = "<|image_1|>"


@dataclass
class Input:
    """One input to the encoder: a text and/or image with an instruction, or a raw prompt in which
    IMAGE_TAG marks the image (MMEB rows)."""

    text: Optional[str] = None
    image: Any = None  # a path (absolute, or under the dataset's image root), PIL image or uint8 array
    instruction: Optional[str] = None
    prompt: Optional[str] = None


@dataclass
class Example:
    id: str
    text: Optional[str] = None  # stage 1
    query: Optional[Input] = None  # stages 2 and V2
    positive: Optional[Input] = None  # stage 2
    negatives: list = field(default_factory=list)  # stage 2: explicit negatives (list of Input)
    candidates: list = field(default_factory=list)  # V2: positive first, then hard negatives (list of Input)
    scores: list = field(default_factory=list)  # V2: the judge's score of each candidate


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a .jsonl file (or a .json list); a malformed line names its number."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        if path.endswith(".json"):
            rows = json.load(f)
            if not isinstance(rows, list):
                raise ValueError(f"{path}: expected a JSON list of rows")
            return rows
        rows = []
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not a JSON object ({e})") from e
        return rows


def _image(root: Optional[str], value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str) and root is not None and not os.path.isabs(value):
        return os.path.join(root, value)
    return value


def _raw(prompt: Optional[str], image: Any, root: Optional[str]) -> Input:
    """An MMEB text (instruction + text, with IMAGE_TAG where the image goes) as a raw prompt."""
    return Input(prompt=prompt or "", image=_image(root, image))


class TextDataset(Sequence):
    """Stage 1: texts with ids (the keys of the teacher's embeddings)."""

    def __init__(self, texts: Sequence[str], ids: Optional[Sequence[Any]] = None):
        self.texts = list(texts)
        self.ids = [str(i) for i in (ids if ids is not None else range(len(self.texts)))]
        if len(self.ids) != len(self.texts):
            raise ValueError(f"{len(self.ids)} ids for {len(self.texts)} texts")

    @classmethod
    def from_jsonl(cls, path, text_field: str = "text", id_field: Optional[str] = "id") -> "TextDataset":
        rows = read_jsonl(path)
        texts, ids = [], []
        for n, row in enumerate(rows):
            if text_field not in row:
                raise ValueError(f"{path}: row {n} has no field {text_field!r}")
            texts.append(row[text_field])
            ids.append(row.get(id_field, n) if id_field else n)
        return cls(texts, ids)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> Example:
        return Example(id=self.ids[i], text=self.texts[i])


class MmebDataset(Sequence):
    """Stage 2: MMEB-train rows (jsonl / json list / datasets.Dataset / list of dicts)."""

    def __init__(self, rows: Any, image_root: Optional[str] = None, ids: Optional[Sequence[Any]] = None):
        self.rows = rows
        self.image_root = image_root
        self.ids = None if ids is None else [str(i) for i in ids]

    @classmethod
    def from_jsonl(cls, path, image_root: Optional[str] = None) -> "MmebDataset":
        return cls(read_jsonl(path), image_root if image_root is not None else os.path.dirname(os.fspath(path)))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Example:
        row = self.rows[i]
        for key in ("qry", "pos_text"):
            if key not in row:
                raise ValueError(f"MMEB row {i} has no field {key!r} (fields: qry, qry_image_path, pos_text, "
                                 "pos_image_path, neg_text, neg_image_path)")
        root = self.image_root
        ex = Example(id=self.ids[i] if self.ids else str(row.get("id", i)),
                     query=_raw(row["qry"], row.get("qry_image_path"), root),
                     positive=_raw(row["pos_text"], row.get("pos_image_path"), root))
        if row.get("neg_text") or row.get("neg_image_path"):
            ex.negatives = [_raw(row.get("neg_text"), row.get("neg_image_path"), root)]
        return ex


class JudgeDataset(Sequence):
    """UniME-V2: query, positive and the first `num_negatives` hard negatives with their judge scores."""

    def __init__(self, rows: Any, num_negatives: int = 8, image_root: Optional[str] = None):
        self.rows, self.num_negatives, self.image_root = rows, num_negatives, image_root

    @classmethod
    def from_json(cls, path, num_negatives: int = 8, image_root: Optional[str] = None) -> "JudgeDataset":
        return cls(read_jsonl(path), num_negatives,
                   image_root if image_root is not None else os.path.dirname(os.fspath(path)))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Example:
        row, k, root = self.rows[i], self.num_negatives, self.image_root
        negatives, scores = row.get("hard_negatives") or [], row.get("hard_negatives_scores") or []
        if len(negatives) < k or len(scores) < k:
            raise ValueError(f"UniME-V2 row {i} has {len(negatives)} hard negatives and {len(scores)} scores; "
                             f"num_negatives is {k}")
        candidates = [_raw(row.get("pos_text"), row.get("pos_image"), root)]
        candidates += [_raw(text, image, root) for text, image in negatives[:k]]
        return Example(id=str(row.get("id", i)), query=_raw(row.get("query_text"), row.get("query_image"), root),
                       candidates=candidates, scores=[float(row["query_pos_scores"])] + [float(s) for s in scores[:k]])


def as_dataset(data: Any, stage: str, image_root: Optional[str] = None) -> Sequence:
    """A dataset for `stage` from what fit() was given: a dataset, a path (.jsonl / .json), a list of
    str (stage 1), a list of dicts or a datasets.Dataset (MMEB / V2 rows)."""
    if isinstance(data, (TextDataset, MmebDataset, JudgeDataset)):
        return data
    if isinstance(data, Sequence) and len(data) and isinstance(data[0], Example):
        return data
    if isinstance(data, (str, os.PathLike)):
        if stage == "distill":
            return TextDataset.from_jsonl(data)
        if stage == "judge":
            return JudgeDataset.from_json(data, image_root=image_root)
        return MmebDataset.from_jsonl(data, image_root)
    if stage == "distill" and isinstance(data, (list, tuple)) and all(isinstance(t, str) for t in data):
        return TextDataset(data)
    if stage == "judge":
        return JudgeDataset(data, image_root=image_root)
    if stage == "instruct":
        return MmebDataset(data, image_root)
    raise TypeError(f"cannot use {type(data).__name__} as {stage} data: give a path, a dataset or rows")


def iter_inputs(example: Example) -> Iterable[Input]:
    for x in (example.query, example.positive, *example.negatives, *example.candidates):
        if x is not None:
            yield x
