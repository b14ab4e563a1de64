"""Gathering embeddings across ranks for the in-batch losses, keeping the local shard's gradient.

UniME's stage-2 loss mines hard negatives over the *global* batch, so each rank all-gathers the
query and candidate embeddings. ``torch.distributed.all_gather`` returns tensors with no autograd
history; UniME's released ``_gather_tensor`` stops there, so no gradient reaches the local encoder
through the negatives' side. VLM2Vec puts the local tensor back in its slot; we do the same.

With every rank computing the global-batch mean loss on the same gathered batch, rank r's backward
gives the gradient of that loss w.r.t. its own shard only. DDP then *averages* gradients over the
W ranks, which is 1/W of the true gradient of the global loss (the other ranks' shards reach rank r
only as constants). Multiply the loss by ``loss_scale()`` (the world size, as UniME's ``scale_loss``
does) to get the exact gradient of the global-batch loss.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def gather_with_grad(local: torch.Tensor, group=None) -> torch.Tensor:
    """Concatenates ``local`` (b, ...) from every rank in rank order, (W * b, ...).

    The slice of this rank is ``local`` itself, so the result is differentiable w.r.t. it. Every
    rank must pass the same shape. Without an initialised process group this is the identity.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return local
    world = dist.get_world_size(group)
    if world == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local.detach().contiguous(), group=group)
    parts[dist.get_rank(group)] = local  # re-insert the grad-carrying shard (the released code's missing line)
    return torch.cat(parts, 0)


def loss_scale(group=None) -> int:
    """The factor (world size) to multiply a global-batch loss by under DDP gradient averaging."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)
