"""Plain-PyTorch references for the model layer's attention and rotary building blocks.

Written from the definitions (backbones.md 1.3-1.4), one sequence at a time with explicit masks and
a float64 softmax, so the fast paths (flash varlen, per-sequence SDPA, last-token-only queries) are
compared with something that has no shortcut.
"""

import torch


def packed_attention(q, k, v, lengths, causal=True, sliding_window=None, last_only=False, scale=None):
    """q: (T or B, H, d), k/v: (T, Hkv, d). Each sequence attends only within itself; causal keys
    j <= i (and i - j < window); non-causal: every key of the sequence. Returns q's shape."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    rep = q.shape[1] // k.shape[1]
    outs, start = [], 0
    for b, n in enumerate(lengths):
        kb = k[start : start + n].repeat_interleave(rep, dim=1).double()  # head h reads kv head h // rep
        vb = v[start : start + n].repeat_interleave(rep, dim=1).double()
        qb = (q[b : b + 1] if last_only else q[start : start + n]).double()
        rows = torch.arange(n - 1, n) if last_only else torch.arange(n)
        cols = torch.arange(n)
        allowed = torch.ones(len(rows), n, dtype=torch.bool)
        if causal:
            allowed = cols[None] <= rows[:, None]
            if sliding_window is not None:
                allowed &= (rows[:, None] - cols[None]) < sliding_window
        scores = torch.einsum("qhd,khd->hqk", qb, kb) * scale
        scores = scores.masked_fill(~allowed[None], float("-inf"))
        outs.append(torch.einsum("hqk,khd->qhd", scores.softmax(-1), vb).to(q.dtype))
        start += n
    return torch.cat(outs, 0)


def rotary_tables(positions, head_dim, theta):
    """transformers' default rotary embedding: inv_freq in fp32, angles position * inv_freq in fp32,
    cat(freqs, freqs), cos and sin."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos(), emb.sin()
