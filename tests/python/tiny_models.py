"""The one factory of tiny randomly initialised models for the tests: decoders of each supported
family and LLaVA-NeXT (transformers at test time, no download).

Sizes are odd on purpose (head_dim 10, GQA groups of 3, intermediate sizes that are no power of two)
so shape bugs cannot hide behind friendly numbers.
"""

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Phi3Config,
                          Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM)

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
    # Qwen2: biases on q/k/v only.
    "qwen2": lambda: Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=91, hidden_size=48, intermediate_size=70, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rope_theta=1e6, initializer_range=0.1, attn_implementation="eager",
        )
    ),
    # Phi-3: fused qkv_proj and gate_up_proj; a sliding window shorter than the test sequences.
    "phi3": lambda: Phi3ForCausalLM(
        Phi3Config(
            vocab_size=101, hidden_size=40, intermediate_size=66, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, sliding_window=6, pad_token_id=0, initializer_range=0.1,
            attn_implementation="eager",
        )
    ),
    # Phi-3.5's LongRoPE, scaled down: the long factors apply past 12 positions (the parity batch's
    # longest is 13; tests/python/test_decoder_parity.py covers both sides), attention factor
    # sqrt(1 + ln(48 / 12) / ln(12)).
    "phi3_longrope": lambda: Phi3ForCausalLM(
        Phi3Config(
            vocab_size=101, hidden_size=40, intermediate_size=66, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=48, original_max_position_embeddings=12,
            rope_scaling={"type": "su", "short_factor": [1.0, 1.13, 1.9, 2.43, 3.7],
                          "long_factor": [1.08, 2.5, 6.2, 17.1, 40.3]},
            pad_token_id=0, initializer_range=0.1, attn_implementation="eager",
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


# LLaVA-NeXT with 28-px tiles of 14-px patches (2x2 features per tile) and small anyres grids.
TINY_LLAVA_PINPOINTS = [[28, 56], [56, 28], [56, 56], [84, 28], [28, 84]]
TINY_LLAVA_IMAGE_TOKEN = 100


def make_tiny_llava_next(seed: int = 0, vocab_size: int = 120, image_token: int = TINY_LLAVA_IMAGE_TOKEN,
                         pad_token_id=None, max_position_embeddings: int = 32768):
    """A tiny LlavaNextForConditionalGeneration: CLIP 3 layers (2 run: feature layer -2), Mistral 2 layers."""
    from transformers import CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    torch.manual_seed(seed)
    # max_position_embeddings 32768: LLaVA-1.6-Mistral's, the default length limit of its processor.
    text = dict(vocab_size=vocab_size, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, rope_theta=1e6, sliding_window=None, initializer_range=0.1,
                max_position_embeddings=max_position_embeddings)
    if pad_token_id is not None:
        text["pad_token_id"] = pad_token_id
    config = LlavaNextConfig(
        text_config=MistralConfig(**text).to_dict(),
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=40, num_hidden_layers=3,
                                       num_attention_heads=4, image_size=28, patch_size=14,
                                       initializer_range=0.1).to_dict(),
        image_token_index=image_token, image_grid_pinpoints=TINY_LLAVA_PINPOINTS, vision_feature_layer=-2,
        attn_implementation="eager",
    )
    model = LlavaNextForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def save_tiny_llava_next_pipeline(path, tokenizer_json: str, seed: int = 0):
    """A tiny LLaVA-NeXT checkpoint directory with the LLaVA-1.6 vocabulary layout (<image> = 32000,
    <pad> = 32001), its image processor config and `tokenizer_json`; returns (model, processor), the
    transformers pipeline that unime must reproduce on it."""
    import shutil

    from transformers import LlavaNextImageProcessor, LlavaNextProcessor, PreTrainedTokenizerFast

    hf = make_tiny_llava_next(seed, vocab_size=32064, image_token=32000, pad_token_id=32001)
    hf.save_pretrained(path, safe_serialization=True)
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                              image_grid_pinpoints=TINY_LLAVA_PINPOINTS)
    image_processor.save_pretrained(path)
    shutil.copy(tokenizer_json, f"{path}/tokenizer.json")
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{path}/tokenizer.json", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                  model_input_names=["input_ids", "attention_mask"])
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                                   vision_feature_select_strategy="default", image_token="<image>",
                                   num_additional_image_tokens=1)
    return hf, processor


# Qwen2-VL: small images (smart_resize caps them at 16 merged tokens) and the real Qwen2 vocabulary size.
TINY_QWEN2_VL_PIXELS = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16}


def make_tiny_qwen2_vl(seed: int = 0, vocab_size: int = 151657):
    """A tiny Qwen2VLForConditionalGeneration: vision 2 blocks (embed 32, 4 heads), Qwen2 2 layers
    (hidden 64, 4 heads / 2 kv heads, head_dim 16, mrope_section [2, 3, 3])."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    config = Qwen2VLConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, initializer_range=0.1,
        vision_config={"depth": 2, "embed_dim": 32, "num_heads": 4, "mlp_ratio": 2, "hidden_size": 64, "patch_size": 14,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "initializer_range": 0.1},
        image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
        pad_token_id=151643, bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=False,
        attn_implementation="eager",
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_q" in name:
                p.add_(torch.randn_like(p) * 0.1)
            elif name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.05)  # transformers initialises biases to 0
    return model


def save_tiny_qwen2_vl_pipeline(path, tokenizer_json: str, seed: int = 0, pixels=None):
    """A tiny Qwen2-VL checkpoint directory with the real Qwen2 vocabulary (tokenizer_json), its
    preprocessor_config.json; returns (model, processor), the transformers pipeline to reproduce."""
    import shutil

    from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor

    hf = make_tiny_qwen2_vl(seed)
    hf.save_pretrained(path, safe_serialization=True)
    image_processor = Qwen2VLImageProcessor(**(pixels or TINY_QWEN2_VL_PIXELS))
    image_processor.save_pretrained(path)
    shutil.copy(tokenizer_json, f"{path}/tokenizer.json")
    tok = Qwen2TokenizerFast(tokenizer_file=f"{path}/tokenizer.json", pad_token="<|endoftext|>",
                             eos_token="<|im_end|>", unk_token=None, bos_token=None, padding_side="left")
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok)
    return hf, processor
