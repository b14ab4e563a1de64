"""Candidate lists for UniME-V2-style training, mined from a corpus with the current model.

UniME-V2 (section 4.2 of unime-method.md) retrieves each query's top-50 corpus items with an embedding
model, drops likely false negatives (scoring above the positive), keeps a few per query and has an
MLLM judge score every candidate. Its mining and judging code is not released; this helper does the
retrieval and filtering with any unime.Model, and calls `judge(query, candidate) -> float` when
given (an MLLM judge, a reranker, or a rule); rows come out in the format JudgeDataset reads.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch

from .. import ops
from .data import Input


def _embed(model, inputs: Sequence[Input], batch_size: int) -> torch.Tensor:
    prompts = [x.prompt for x in inputs]
    if any(p is not None for p in prompts):
        if not all(p is not None for p in prompts):
            raise ValueError("give every input a prompt, or none")
        return model.encode(prompts=prompts, images=[x.image for x in inputs], batch_size=batch_size)
    return model.encode([x.text for x in inputs], [x.image for x in inputs],
                        instruction=[x.instruction for x in inputs], batch_size=batch_size)


def mine_candidates(model, queries: Sequence[Input], corpus: Sequence[Input], positives: Sequence[int], *,
                    k: int = 10, margin: float = 0.0, judge: Optional[Callable[[Input, Input], float]] = None,
                    batch_size: int = 32) -> list[dict]:
    """For each query: its top-k corpus items other than its positive, among those scoring at most
    score(positive) + margin (margin 0: UniME-V2's "candidate < positive" filter).

    Args:
        queries, corpus: the inputs (raw MMEB prompts or text / image / instruction).
        positives: the corpus index of each query's positive.
        judge: scores (query, candidate); without it the rows carry no judge scores (fill them in).
    Returns one dict per query: query_text, query_image, pos_text, pos_image, hard_negatives
    [[text, image], ...], hard_negative_indices, retrieval_scores, and query_pos_scores /
    hard_negatives_scores when a judge is given.
    """
    if len(positives) != len(queries):
        raise ValueError(f"{len(positives)} positives for {len(queries)} queries")
    q = _embed(model, queries, batch_size)
    c = _embed(model, corpus, batch_size)
    idx, scores = ops.mine_hard_negatives(q, c, k, positive=torch.as_tensor(list(positives), dtype=torch.long),
                                          beta=margin)
    rows = []
    for i, query in enumerate(queries):
        picked = [j for j in idx[i].tolist() if j >= 0]
        text = lambda x: x.prompt if x.prompt is not None else x.text  # noqa: E731
        pos = corpus[positives[i]]
        row = {"query_text": text(query), "query_image": query.image, "pos_text": text(pos), "pos_image": pos.image,
               "hard_negatives": [[text(corpus[j]), corpus[j].image] for j in picked],
               "hard_negative_indices": picked, "retrieval_scores": scores[i, : len(picked)].tolist()}
        if judge is not None:
            row["query_pos_scores"] = float(judge(query, pos))
            row["hard_negatives_scores"] = [float(judge(query, corpus[j])) for j in picked]
        rows.append(row)
    return rows


__all__ = ["mine_candidates", "Any"]
