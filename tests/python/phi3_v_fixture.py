"""A tiny Phi-3.5-V (Phi3VForCausalLM, remote code) for the tests, and the inputs of its cached oracle.

Phi-3.5-V is not part of transformers: its original code (modeling_phi3_v.py and friends, vendored by
VLM2Vec under src/model/baseline_backbone/phi3_v/) cannot be installed from PyPI, and none of it is in
this repository. Its outputs on this tiny model and these inputs were recorded once, outside the
repository (tests/data/phi3_v/README.md says how), in tests/data/phi3_v/oracle.json: pixel hashes,
token ids, embeddings and the parameter list.

The tests' oracle is tests/reference/phi3_v.py (plain PyTorch from the specification); the cached
outputs of the original check that reference (and unime) against the original once more.

The tiny model keeps what the original code hard-codes (CLIP width 1024, 336-px crops of 14-px
patches, 12 x 12 merged features per crop) and shrinks the rest: CLIP 2 layers with a 64-wide MLP,
a Phi-3 decoder of 2 layers x 64 with LongRoPE.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "phi3_v")

# The original code's ViT-L/14-336 constant, shrunk where it can be (width 1024 is asserted).
TINY_CLIP = dict(hidden_size=1024, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                 image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                 attention_dropout=0.0, dropout=0.0, projection_dim=768, num_channels=3)

# config.json of the tiny checkpoint (Phi3VConfig fields). "vision_config" inside img_processor is
# unime's extension for models whose CLIP is not ViT-L/14-336; the released checkpoints have none.
TINY_CONFIG = dict(
    model_type="phi3_v", architectures=["Phi3VForCausalLM"], vocab_size=32064, hidden_size=64, intermediate_size=96,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, hidden_act="silu",
    max_position_embeddings=131072, original_max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
    rope_scaling={"type": "su", "short_factor": [1.08, 1.1, 1.13, 1.28, 1.31, 1.45, 1.95, 2.03],
                  "long_factor": [1.08, 1.11, 1.14, 1.34, 1.6, 3.2, 12.5, 40.3]},
    bos_token_id=1, eos_token_id=2, pad_token_id=32000, sliding_window=262144, tie_word_embeddings=False,
    embd_layer={"embedding_cls": "image", "hd_transform_order": "sub_glb", "projection_cls": "mlp",
                "use_hd_transform": True, "with_learnable_separator": True},
    img_processor={"image_dim_out": 1024, "model_name": "openai/clip-vit-large-patch14-336",
                   "name": "clip_vision_model", "num_img_tokens": 144, "vision_config": TINY_CLIP},
    torch_dtype="float32",
)


def weight(name: str, shape) -> torch.Tensor:
    """The value of parameter `name`: a function of its name alone (not of creation order)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    w = torch.randn(tuple(shape), generator=g)
    if "norm" in name and name.endswith("weight"):  # RMSNorm / LayerNorm scales (CLIP's "pre_layrnorm" too)
        return 1.0 + 0.1 * w
    if name.endswith("_GN"):
        return 0.5 * w
    return 0.05 * w


def image(seed: int, height: int, width: int) -> np.ndarray:
    """An RGB uint8 picture with structure at every scale (gradients, stripes, noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([255 * y / max(1, height - 1), 255 * x / max(1, width - 1),
                     127 + 120 * np.sin((x + 2 * y) / 3.0)], -1)
    noisy = base + rng.normal(0, 25, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


# (seed, height, width): landscape, portrait (transposed by the HD transform), square, very wide,
# tall, and one larger than a crop.
IMAGES = [(1, 50, 80), (2, 90, 40), (3, 336, 336), (4, 20, 300), (5, 300, 24), (6, 700, 500)]
NUM_CROPS = [4, 16]

# Raw prompts as MMEB / VLM2Vec write them: "<|image_1|>" where the image goes.
IMAGE_PROMPTS = ["<|image_1|>\nRepresent the given image.\n",
                 "<|user|>\n<|image_1|>\nFind a caption for the image.<|end|>\n<|assistant|>\n",
                 "<|image_1|> Select the portion of the image that isolates the object.\n"]
TEXT_PROMPTS = ["A cat sleeps on a red sofa.", "<|user|>\nFind me an everyday image that matches the given "
                "caption: two dogs run on the beach.<|end|>\n<|assistant|>\n"]


def load_oracle() -> dict:
    with open(os.path.join(DATA, "oracle.json")) as f:
        return json.load(f)


def reference_model(dtype=torch.float32, config: dict | None = None):
    """tests/reference/phi3_v.py's model of `config` (TINY_CONFIG) with the weights of weight(released name)."""
    from reference.phi3_v import Phi3VReference

    model = Phi3VReference(config or TINY_CONFIG).eval()
    names = model.released_names()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for released, name in names.items():
            params[name].copy_(weight(released, params[name].shape))
    return model.to(dtype)


def save_tiny_checkpoint(path: str, tokenizer_json: str, num_crops: int = 4, config: dict | None = None) -> str:
    """The tiny checkpoint as the released one is laid out (model.*, vision_embed_tokens.*, wte as a
    second name of embed_tokens), with the Phi-3 tokenizer and a preprocessor config."""
    model = reference_model(config=config)
    write_checkpoint_files(path, tokenizer_json, num_crops, config)
    save_weights(path, model)
    return path


def save_weights(path: str, model) -> None:
    """A Phi3VReference's parameters under the released names, as model.safetensors."""
    from safetensors.torch import save_file

    params = dict(model.named_parameters())
    tensors = {released: params[name].detach().cpu().contiguous() for released, name in model.released_names().items()}
    tensors["model.vision_embed_tokens.wte.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def write_checkpoint_files(path: str, tokenizer_json: str, num_crops: int = 4, config: dict | None = None) -> None:
    """Everything of a checkpoint folder but the weights: config.json, the preprocessor config, the tokenizer."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config or TINY_CONFIG, f, indent=1)
    with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Phi3VImageProcessor", "num_crops": num_crops,
                   "image_mean": [0.48145466, 0.4578275, 0.40821073],
                   "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True}, f)
    with open(tokenizer_json) as src, open(os.path.join(path, "tokenizer.json"), "w") as dst:
        dst.write(src.read())
