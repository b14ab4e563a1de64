"""Ranking metrics on similarity scores, with explicit rules for ties and missing candidates.

Ties: candidates are ranked by score, descending; equal scores keep candidate order ("first", the
default) — the rule of MMEB's official scorer (np.argmax picks the first maximum, and the correct
candidate is listed first). "pessimistic" ranks a positive after every candidate tied with it,
"optimistic" before. NDCG also offers "average" (the expected gain over all orders of a tied
group, as scikit-learn's ndcg_score computes it).

A query with no candidates cannot be scored; a query with no relevant candidate has no defined
recall or NDCG. Both are left out of the mean and counted (BEIR / pytrec_eval's convention), not
scored as misses; every function returns how many queries it scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

TIES = ("first", "pessimistic", "optimistic")


@dataclass
class Score:
    """A metric's mean over the queries it could score, and how many it left out and why."""

    value: float  # mean in [0, 1]; NaN when no query could be scored
    scored: int
    left_out: int = 0


def _check_ties(ties: str, allowed: Sequence[str] = TIES) -> None:
    if ties not in allowed:
        raise ValueError(f"ties must be one of {', '.join(allowed)}; got {ties!r}")


def _as_matrix(scores) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(scores) if not isinstance(scores, torch.Tensor) else scores)
    if t.dim() != 2:
        raise ValueError(f"scores must be (queries, candidates), got shape {tuple(t.shape)}")
    return t if t.is_floating_point() else t.double()


def rank_of(scores: torch.Tensor, index: torch.Tensor, ties: str = "first") -> torch.Tensor:
    """0-based rank of candidate index[q] in row q of scores (Q, C), under the tie rule."""
    _check_ties(ties)
    own = scores.gather(1, index[:, None])
    above = (scores > own).sum(1)
    if ties == "optimistic":
        return above
    tied = scores == own
    if ties == "pessimistic":
        return above + tied.sum(1) - 1
    columns = torch.arange(scores.shape[1])[None, :]
    return above + (tied & (columns < index[:, None])).sum(1)


def precision_at_1(rows: Iterable[Sequence[float]], *, ties: str = "first") -> Score:
    """MMEB's metric: the share of rows whose first candidate (the correct one) scores highest.

    rows: each query's scores over its own candidate list, correct candidate first; lists may
    differ in length. Rows with no candidates are left out and counted.
    """
    _check_ties(ties)
    hits, scored, empty = 0, 0, 0
    for row in rows:
        r = np.asarray(row, dtype=np.float64)
        if r.size == 0:
            empty += 1
            continue
        if np.isnan(r).any():
            raise ValueError(f"scores of row {scored + empty} contain NaN")
        rank = rank_of(torch.from_numpy(r)[None], torch.zeros(1, dtype=torch.long), ties)
        hits += int(rank.item() == 0)
        scored += 1
    return Score(hits / scored if scored else float("nan"), scored, empty)


def recall_at_k(scores, positives: Sequence[Iterable[int]], ks: Sequence[int] = (1, 5, 10), *,
                ties: str = "first") -> dict[int, Score]:
    """Share of queries with at least one relevant candidate among the top k, for each k.

    scores: (Q, C); positives[q]: the indices of query q's relevant candidates (Flickr30K/COCO
    image->text: an image's five captions, any of which counts). Queries with no positive are
    left out and counted.
    """
    s = _as_matrix(scores)
    if len(positives) != s.shape[0]:
        raise ValueError(f"positives has {len(positives)} entries for {s.shape[0]} queries")
    pairs = [(q, p) for q, pos in enumerate(positives) for p in pos]
    for q, p in pairs:
        if not 0 <= p < s.shape[1]:
            raise ValueError(f"query {q}: positive index {p} out of range 0..{s.shape[1] - 1}")
    best = torch.full((s.shape[0],), torch.iinfo(torch.long).max, dtype=torch.long)
    for start in range(0, len(pairs), 1024):  # ranks of (query, positive) pairs, in chunks of rows
        q, p = (torch.tensor(x, dtype=torch.long) for x in zip(*pairs[start:start + 1024]))
        best.scatter_reduce_(0, q, rank_of(s[q], p, ties), "amin")
    best[best == torch.iinfo(torch.long).max] = -1
    valid = best >= 0
    n = int(valid.sum())
    return {k: Score(float((best[valid] < k).double().mean()) if n else float("nan"), n, s.shape[0] - n)
            for k in ks}


def recall_at_k_single(scores, positive: Sequence[int], ks: Sequence[int] = (1, 5, 10), *,
                       ties: str = "first") -> dict[int, Score]:
    """recall_at_k with exactly one positive per query (text->image), vectorised."""
    s = _as_matrix(scores)
    ranks = rank_of(s, torch.as_tensor(np.asarray(positive), dtype=torch.long), ties)
    return {k: Score(float((ranks < k).double().mean()), s.shape[0]) for k in ks}


def _dcg_first(relevance: np.ndarray, order: np.ndarray, k: int) -> float:
    top = relevance[order[:k]]
    return float((top / np.log2(np.arange(2, top.size + 2))).sum())


def _dcg_average(relevance: np.ndarray, scores: np.ndarray, k: int) -> float:
    # Each tied group shares its mean gain over the positions it spans (McSherry & Najork 2008).
    values, inverse, counts = np.unique(-scores, return_inverse=True, return_counts=True)
    gains = np.zeros(values.size)
    np.add.at(gains, inverse, relevance)
    gains /= counts
    discount = 1.0 / np.log2(np.arange(2, scores.size + 2))
    discount[k:] = 0
    ends = np.cumsum(counts)
    starts = ends - counts
    cum = np.concatenate([[0.0], np.cumsum(discount)])
    return float((gains * (cum[ends] - cum[starts])).sum())


def ndcg_at_k(scores, relevance, k: int = 5, *, ties: str = "first") -> Score:
    """Normalised discounted cumulative gain at k (gain = relevance, discount 1/log2(rank + 2)).

    scores, relevance: (Q, C), relevance >= 0 (graded or 0/1). Queries with no relevant candidate
    are left out and counted. ties="average" equals sklearn.metrics.ndcg_score.
    """
    _check_ties(ties, TIES + ("average",))
    s = _as_matrix(scores).numpy()
    rel = np.asarray(relevance, dtype=np.float64)
    if rel.shape != s.shape:
        raise ValueError(f"relevance shape {rel.shape} differs from scores shape {s.shape}")
    if (rel < 0).any():
        raise ValueError("relevance must be >= 0")
    values, left_out = [], 0
    for q in range(s.shape[0]):
        ideal = np.sort(rel[q])[::-1][:k]
        idcg = float((ideal / np.log2(np.arange(2, ideal.size + 2))).sum())
        if idcg == 0:
            left_out += 1
            continue
        if ties == "average":
            dcg = _dcg_average(rel[q], s[q], k)
        else:
            # Stable order by descending score, then move the relevant ones within ties as the rule says.
            key = -rel[q] if ties == "optimistic" else (rel[q] if ties == "pessimistic" else np.zeros(s.shape[1]))
            order = np.lexsort((np.arange(s.shape[1]), key, -s[q]))
            dcg = _dcg_first(rel[q], order, k)
        values.append(dcg / idcg)
    return Score(float(np.mean(values)) if values else float("nan"), len(values), left_out)


def pairwise_accuracy(positive_scores, negative_scores) -> Score:
    """SugarCrepe's metric: the share of items whose positive caption scores strictly higher than
    the negative one (a tie is wrong)."""
    p = np.asarray(positive_scores, dtype=np.float64)
    n = np.asarray(negative_scores, dtype=np.float64)
    if p.shape != n.shape:
        raise ValueError(f"positive ({p.shape}) and negative ({n.shape}) scores differ in shape")
    if p.size == 0:
        return Score(float("nan"), 0)
    return Score(float((p > n).mean()), int(p.size))


def top_k_accuracy(scores, labels: Sequence[int], ks: Sequence[int] = (1, 5), *, ties: str = "first"
                   ) -> dict[int, Score]:
    """Classification: share of samples whose true class is among the k best-scoring classes."""
    return recall_at_k_single(scores, labels, ks, ties=ties)
