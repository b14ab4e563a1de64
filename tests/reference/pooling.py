"""Reference pooling: what UniME / VLM2Vec / GME do with Hugging Face hidden states."""

import torch
import torch.nn.functional as F


def last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, D), attention_mask (B, L) -> (B, D) at each row's last real token.

    VLM2Vec's rule: position -1 when every row ends with a real token (left padding), else
    sum(mask) - 1 per row (right padding).
    """
    if bool(attention_mask[:, -1].all()):
        return hidden[:, -1]
    idx = attention_mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0]), idx]


def embed(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return F.normalize(last_token(hidden, attention_mask), dim=-1)
