"""Python face of the registered unime ops (torch.ops.unime.*).

The ops, their CPU/CUDA kernels, autograd and Meta (fake) kernels are registered in C++
(csrc/ops/); importing unime._C registers them. These wrappers document shapes and dtypes.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.unime)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as Llama/Mistral/Qwen2 define it.

    ``weight * (x_f32 * rsqrt(mean(x_f32**2, -1) + eps)).to(x.dtype)``

    Args:
        x: (..., D) floating tensor.
        weight: (D,) with x's dtype and device.
        eps: added to the mean square.
    """
    return torch.ops.unime.rms_norm(x, weight, eps)


def gated_silu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's gate, ``silu(gate) * up``, in one pass on CPU (the unfused maths elsewhere).

    The silu is rounded to the input dtype before the product, as ``F.silu(gate) * up`` rounds it,
    so reduced-precision results equal the unfused expression's up to the last bit of exp.

    Args:
        gate, up: tensors of one shape, floating dtype and device (any strides).
    Returns: a contiguous tensor of that shape and dtype.
    """
    return torch.ops.unime.gated_silu(gate, up)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """CLIP's QuickGELU, ``x * sigmoid(1.702 * x)``, in one pass on CPU (rounded as the unfused
    expression rounds each step).

    Args:
        x: a floating tensor (any strides).
    Returns: a contiguous tensor of x's shape and dtype.
    """
    return torch.ops.unime.quick_gelu(x)


def lora_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    scaling: float,
    lora_x: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Linear with a LoRA adapter, PEFT's maths: ``x W^T + b + scaling * (lora_x A^T) B^T``.

    Args:
        x: (..., in); weight: (out, in); bias: (out,) or None.
        lora_a: (r, in), lora_b: (out, r): the adapter (computed in lora_a's dtype, added in x's).
        lora_x: the adapter's input when it differs from x (x after dropout); default x.
    """
    return torch.ops.unime.lora_linear(x, weight, bias, lora_a, lora_b, scaling, lora_x)


# ---- UniME objectives and the hard-negative miner (docs/losses.md) ------------------------------


def similarity_kl(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float = 0.05,
    direction: str = "student_teacher",
    reduction: str = "sum",
    normalize: bool = False,
) -> torch.Tensor:
    """UniME stage 1: KL between the row-softmaxes of in-batch similarity matrices (Eq. 2).

    ``P = softmax(student @ student.T / temperature, -1)``, ``Q`` likewise for the teacher; the
    embedding dims may differ. ``direction``: "student_teacher" = KL(P||Q) as the paper writes it,
    "teacher_student" = KL(Q||P) (F.kl_div's), "symmetric" = their mean. ``reduction``: "sum" over
    rows (the paper's sum) or "mean". The paper gives no temperature: 0.05 is E5-V's.

    Args:
        student: (n, ds) L2-normalised student embeddings (gradients flow).
        teacher: (n, dt) L2-normalised teacher embeddings (usually offline, no grad).
        normalize: L2-normalise both inside (differentiably, in fp32/fp64) for inputs that are not
            unit vectors already; off by default, when un-normalised inputs are used as they are.
    Returns a 0-d tensor in student's dtype (computed in fp32; fp64 for fp64).
    """
    return torch.ops.unime.similarity_kl(student, teacher, temperature, direction, reduction, normalize)


def hard_negative_infonce(
    query: torch.Tensor,
    candidate: torch.Tensor,
    negatives: torch.Tensor | None = None,
    k: int = 8,
    beta: float = 0.1,
    temperature: float = 0.02,
    all_in_batch: bool = False,
    return_indices: bool = False,
    normalize: bool = False,
):
    """UniME stage 2: InfoNCE over [positive, k hard negatives] with the false-negative filter.

    ``S = query @ candidate.T``; for query i, candidates with ``S_ij > S_ii + beta`` are dropped as
    likely false negatives, then the k highest survivors (ties: lower index) join the positive in
    ``CE([S_ii, S_i,n1..nk] / temperature, 0)``, averaged over the batch. Fewer than k survivors:
    only those are used (no duplication). ``all_in_batch=True`` puts every survivor in the
    denominator (with ``beta=inf``, no ``negatives`` and N = B: VLM2Vec's loss; see docs/losses.md
    for N > B). ``negatives`` (B, m, d) are explicit per-query negatives, always in the denominator,
    unfiltered.

    Args:
        query: (B, d) L2-normalised queries (the global batch: see unime.distributed).
        candidate: (N >= B, d); candidate[i] is query i's positive, the rest are extra negatives.
        normalize: L2-normalise query, candidate and negatives inside (differentiably) first; beta
            is a cosine margin, so un-normalised inputs need this.
    Returns the 0-d loss, and with ``return_indices`` also the (B, k) int64 hard negatives used
    (-1 where fewer survived; (B, 0) with all_in_batch).
    """
    loss, picked = torch.ops.unime.hard_negative_infonce(
        query, candidate, negatives, k, beta, temperature, all_in_batch, normalize
    )
    return (loss, picked) if return_indices else loss


def judge_alignment(
    query: torch.Tensor,
    candidates: torch.Tensor,
    judge_scores: torch.Tensor,
    temperature: float = 0.02,
    eps: float = 1e-8,
    normalize: bool = False,
) -> torch.Tensor:
    """UniME-V2: ``(KL(T||P) + KL(P||T)) / 2`` batch mean, P = softmax(cos / tau), T = softmax(judge / tau).

    As UniME-V2's released loss.py computes it: each KL takes ``log(x + eps)`` of the distribution
    it is measured against, ``KL(T||P) = sum t (log t - log(p + eps))`` and ``KL(P||T) = sum p (log p -
    log(t + eps))``. ``eps=1e-8`` (the default) reproduces the release; at tau = 0.02 the softmaxes
    hold probabilities far below 1e-8, so this differs from the exact KL in value and gradient.
    ``eps=0`` gives the exact log-softmax form.

    Args:
        query: (B, d) L2-normalised.
        candidates: (B, 1 + k, d) L2-normalised, the positive first.
        judge_scores: (B, 1 + k) the MLLM judge's scores of the same candidates.
        normalize: L2-normalise query and candidates inside (differentiably) first.
    Returns 0-d, query's dtype.
    """
    return torch.ops.unime.judge_alignment(query, candidates, judge_scores, temperature, eps, normalize)


def mine_hard_negatives(
    query: torch.Tensor,
    corpus: torch.Tensor,
    k: int,
    *,
    positive: torch.Tensor | None = None,
    beta: float | None = None,
    positive_scores: torch.Tensor | None = None,
    max_score: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
    query_ids: torch.Tensor | None = None,
    corpus_ids: torch.Tensor | None = None,
    index_offset: int = 0,
    chunk_size: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k corpus items per query, excluding positives, same-id duplicates and likely false negatives.

    Scores are ``query @ corpus.T`` made one (query block x ``chunk_size``) tile at a time, so Q x N
    scores never exist at once.

    Args:
        query: (Q, d), corpus: (N, d) same dtype and device.
        positive: (Q,) or (Q, p) int64 global corpus indices of each query's positives (-1 = none):
            never returned.
        beta: UniME's false-negative filter: items scoring above ``positive score + beta`` are
            dropped. The positive score is ``query . corpus[positive[:, 0] - index_offset]``, read from
            this corpus, so every ``positive[:, 0]`` must lie in [index_offset, index_offset + N) or
            be -1 (no ceiling for that query); otherwise (a corpus in pieces) pass ``positive_scores``.
        positive_scores: (Q,) each query's score of its positive (e.g. ``(query * pos_emb).sum(-1)``),
            for ``beta`` when the positive is not in this corpus piece.
        max_score: (Q,) explicit per-query ceiling instead of ``beta`` (items with score > ceiling
            are dropped; +inf: none).
        exclude: (Q, m) int64 more global indices to skip.
        query_ids, corpus_ids: (Q,), (N,) int64; corpus j is skipped when its id equals the query's.
        index_offset: global index of corpus row 0 (for streaming a corpus in pieces).
    Returns (indices (Q, k) int64, scores (Q, k) float32 [float64 for float64]) sorted by score
    descending, ties by lower index, padded with -1 / -inf when fewer than k survive.
    """
    op = "unime.mine_hard_negatives"
    if beta is not None and max_score is not None:
        raise ValueError(f"{op}: give either beta (with positive or positive_scores) or max_score, not both")
    if beta is None and positive_scores is not None:
        raise ValueError(f"{op}: positive_scores is only used with beta (the ceiling is positive_scores + beta)")
    if beta is not None and positive is None and positive_scores is None:
        raise ValueError(f"{op}: beta needs positive (in this corpus) or positive_scores to know each query's "
                         "positive score")
    first = None
    if positive is not None:
        positive = positive.reshape(positive.shape[0], -1)
        exclude = positive if exclude is None else torch.cat([positive, exclude], 1)
        first = positive[:, 0]
    if beta is not None:
        compute = torch.float64 if query.dtype == torch.float64 else torch.float32
        if positive_scores is not None:
            if positive_scores.shape != (query.shape[0],):
                raise ValueError(f"{op}: positive_scores must have shape ({query.shape[0]},), got "
                                 f"{tuple(positive_scores.shape)}")
            pos_score = positive_scores.to(device=query.device, dtype=compute)
        else:
            # The ceiling comes from the positive's row of this corpus: refuse when it is elsewhere
            # rather than read another row's score.
            n = corpus.shape[0]
            outside = (first >= 0) & ((first < index_offset) | (first >= index_offset + n))
            if bool(outside.any()):
                q = int(outside.nonzero()[0, 0])
                raise ValueError(
                    f"{op}: positive[{q}, 0] = {int(first[q])} is not in this corpus piece "
                    f"[{index_offset}, {index_offset + n}) (index_offset={index_offset}, N={n}), so its score "
                    "for beta cannot be read here; pass positive_scores (Q,) or max_score (Q,)")
            local = (first - index_offset).clamp(0, max(n - 1, 0))
            pos_score = ((query.to(compute) * corpus[local].to(compute)).sum(-1) if n > 0
                         else torch.zeros(query.shape[0], dtype=compute, device=query.device))
        max_score = pos_score + beta
        if first is not None:  # queries without a positive (-1) get no ceiling
            max_score = torch.where(first >= 0, max_score, torch.full_like(max_score, float("inf")))
    return torch.ops.unime.mine_hard_negatives(
        query, corpus, k, max_score, exclude, query_ids, corpus_ids, index_offset, chunk_size
    )


def mine_hard_negatives_streaming(query: torch.Tensor, corpus_pieces, k: int, **kwargs):
    """``mine_hard_negatives`` over a corpus given as an iterable of (n_i, d) pieces (e.g. memory-mapped
    shards larger than memory together). Pieces are numbered consecutively from 0; ``max_score``,
    ``exclude``, ``positive`` and ids (``corpus_ids`` as an iterable of per-piece tensors) work as
    above. With ``beta``, pass ``positive_scores`` (or a ``max_score``): a piece that does not hold
    a query's positive cannot score it, and ``positive`` + ``beta`` alone raises ValueError there."""
    corpus_ids = kwargs.pop("corpus_ids", None)
    id_pieces = iter(corpus_ids) if corpus_ids is not None else None
    best_idx = best_score = None
    offset = 0
    for piece in corpus_pieces:
        ids = next(id_pieces) if id_pieces is not None else None
        idx, score = mine_hard_negatives(query, piece, k, index_offset=offset, corpus_ids=ids, **kwargs)
        offset += piece.shape[0]
        if best_idx is None:
            best_idx, best_score = idx, score
            continue
        # Earlier pieces hold lower indices: a stable descending sort keeps ties in index order.
        all_score = torch.cat([best_score, score], 1)
        all_idx = torch.cat([best_idx, idx], 1)
        order = torch.sort(all_score, dim=1, descending=True, stable=True).indices[:, :k]
        best_score, best_idx = all_score.gather(1, order), all_idx.gather(1, order)
    return best_idx, best_score
