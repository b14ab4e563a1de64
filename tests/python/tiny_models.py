"""Tiny randomly initialised decoders of each supported family (transformers at test time, no download).

Sizes are odd on purpose (head_dim 10, GQA groups of 3, intermediate sizes that are no power of two)
so shape bugs cannot hide behind friendly numbers.
"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

TINY_DECODERS = {
    "mistral": lambda: MistralForCausalLM(
        MistralConfig(
            vocab_size=97, hidden_size=60, intermediate_size=100, num_hidden_layers=3, num_attention_heads=6,
            num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=1e6, sliding_window=4096,
            initializer_range=0.1, attn_implementation="eager",
        )
    ),
    "llama": lambda: LlamaForCausalLM(
        LlamaConfig(
            vocab_size=89, hidden_size=40, intermediate_size=72, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, attention_bias=True, mlp_bias=True, initializer_range=0.1,
            attn_implementation="eager",
        )
    ),
    # head_dim set explicitly and different from hidden_size / num_attention_heads.
    "llama_head_dim": lambda: LlamaForCausalLM(
        LlamaConfig(
            vocab_size=61, hidden_size=36, intermediate_size=50, num_hidden_layers=2, num_attention_heads=3,
            num_key_value_heads=1, head_dim=14, initializer_range=0.1, attn_implementation="eager",
        )
    ),
}


def make_tiny_decoder(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = TINY_DECODERS[name]()
    # Norm weights start at exactly 1; perturb them so a skipped or misapplied weight shows.
    with torch.no_grad():
        for module_name, p in model.named_parameters():
            if "norm" in module_name:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()
