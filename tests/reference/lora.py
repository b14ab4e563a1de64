"""PEFT's LoRA Linear written out: base(x) + scaling * B(A(x)), scaling = alpha / r (alpha / sqrt(r) with rsLoRA)."""

import math

import torch
import torch.nn.functional as F


def scaling(r: int, alpha: float, use_rslora: bool = False) -> float:
    return alpha / math.sqrt(r) if use_rslora else alpha / r


def lora_linear(x, weight, bias, lora_a, lora_b, scale):
    return F.linear(x, weight, bias) + F.linear(F.linear(x.to(lora_a.dtype), lora_a), lora_b).to(x.dtype) * scale


def merged_weight(weight, lora_a, lora_b, scale):
    return (weight.float() + (lora_b.float() @ lora_a.float()) * scale).to(weight.dtype)


__all__ = ["scaling", "lora_linear", "merged_weight", "torch"]
