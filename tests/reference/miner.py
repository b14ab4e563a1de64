"""Reference hard-negative miner: the whole Q x N score matrix, masked, sorted (no unime code)."""

import torch


def mine_hard_negatives(query, corpus, k, max_score=None, exclude=None, query_ids=None, corpus_ids=None,
                        index_offset=0):
    """Returns (indices (Q, k), scores (Q, k)) descending, ties by lower index, -1 / -inf padded."""
    c = torch.float64 if query.dtype == torch.float64 else torch.float32
    s = query.to(c) @ corpus.to(c).T
    n = s.shape[1]
    drop = torch.zeros_like(s, dtype=torch.bool)
    if max_score is not None:
        drop |= s > max_score.to(c).unsqueeze(1)
    if exclude is not None:
        glob = torch.arange(n, device=s.device) + index_offset
        drop |= (exclude.unsqueeze(2) == glob.view(1, 1, -1)).any(1)
    if query_ids is not None:
        drop |= query_ids.unsqueeze(1) == corpus_ids.unsqueeze(0)
    s = s.masked_fill(drop, float("-inf"))
    if n < k:
        s = torch.cat([s, torch.full((s.shape[0], k - n), float("-inf"), dtype=c, device=s.device)], 1)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
    scores = s.gather(1, order)
    idx = torch.where(torch.isfinite(scores), order + index_offset, torch.full_like(order, -1))
    return idx, scores
