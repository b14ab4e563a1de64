"""Reference UniME objectives in plain PyTorch (no unime code), written as the papers and the
released code state them (/work/shared/reference/unime-method.md sections 2-4)."""

import torch
import torch.nn.functional as F


def _compute(*xs):
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def similarity_kl(student, teacher, temperature=0.05, direction="student_teacher", reduction="sum"):
    """UniME Eq. 2: sum_i KL(P_s(i,.) || P_t(i,.)), P = row softmax of e e^T / tau."""
    c = _compute(student, teacher)
    s, t = student.to(c), teacher.to(c)
    lp = F.log_softmax(s @ s.T / temperature, dim=-1)
    lq = F.log_softmax(t @ t.T / temperature, dim=-1)
    kl_pq = (lp.exp() * (lp - lq)).sum(-1)
    kl_qp = (lq.exp() * (lq - lp)).sum(-1)
    per_row = {"student_teacher": kl_pq, "teacher_student": kl_qp, "symmetric": 0.5 * (kl_pq + kl_qp)}[direction]
    return (per_row.sum() if reduction == "sum" else per_row.mean()).to(student.dtype)


def hard_negative_infonce(query, candidate, negatives=None, k=8, beta=0.1, temperature=0.02, all_in_batch=False):
    """UniME loss.py, minus the distributed parts: filter S_ij > S_ii + beta, top-k, CE to index 0.

    Differences from the released code, on purpose: fewer than k survivors use only the survivors
    (the code would pick -inf entries); ties pick the lower index. Returns (loss, indices)."""
    c = _compute(query)
    q, cand = query.to(c), candidate.to(c)
    b = q.shape[0]
    s = q @ cand.T
    rows = torch.arange(b, device=q.device)
    pos = s[rows, rows]
    diag = torch.zeros_like(s, dtype=torch.bool)
    diag[rows, rows] = True
    drop = (s > (pos + beta).unsqueeze(1)) | diag
    masked = s.masked_fill(drop, float("-inf"))
    if all_in_batch:
        neg_logits = masked
        picked = torch.empty(b, 0, dtype=torch.long, device=q.device)
    else:
        # Ties by index: a stable descending sort keeps the lower column first.
        order = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :k]
        neg_logits = masked.gather(1, order)
        picked = torch.where(torch.isfinite(neg_logits), order, torch.full_like(order, -1))
        if picked.shape[1] < k:
            pad = torch.full((b, k - picked.shape[1]), -1, dtype=torch.long, device=q.device)
            picked = torch.cat([picked, pad], 1)
    parts = [pos.unsqueeze(1), neg_logits]
    if negatives is not None:
        parts.append(torch.einsum("bmd,bd->bm", negatives.to(c), q))
    logits = torch.cat(parts, 1) / temperature
    target = torch.zeros(b, dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target).to(query.dtype), picked


def judge_alignment(query, candidates, judge_scores, temperature=0.02, eps=1e-8):
    """UniME-V2 Eq. 2-4 as the released Embedding/src/loss.py computes it (SoftLabelSoftKLContrastiveLoss):
    p = softmax(cos / tau), t = softmax(judge / tau), then
    0.5 * (F.kl_div(log(p + eps), t, batchmean) + F.kl_div(log(t + eps), p, batchmean)).
    eps=0 is the exact form: log-softmax instead of log(softmax + 0), which underflows to -inf."""
    c = _compute(query, judge_scores)
    cos = torch.einsum("bkd,bd->bk", candidates.to(c), query.to(c))
    if eps == 0:
        lp = F.log_softmax(cos / temperature, -1)
        lt = F.log_softmax(judge_scores.to(c) / temperature, -1)
        kl_tp = F.kl_div(lp, lt, reduction="batchmean", log_target=True)
        kl_pt = F.kl_div(lt, lp, reduction="batchmean", log_target=True)
    else:
        p = F.softmax(cos / temperature, dim=-1)
        t = F.softmax(judge_scores.to(c) / temperature, dim=-1)
        kl_tp = F.kl_div(torch.log(p + eps), t, reduction="batchmean", log_target=False)
        kl_pt = F.kl_div(torch.log(t + eps), p, reduction="batchmean", log_target=False)
    return (0.5 * (kl_tp + kl_pt)).to(query.dtype)
