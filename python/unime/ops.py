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
