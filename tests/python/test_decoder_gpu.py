"""The decoder on CUDA against transformers: fp32 exactness and bf16 within 2x transformers' error,
for the packed path (flash attention varlen) and the padded path (SDPA). Run where a GPU is present."""

import pytest
import torch
from reference.pooling import last_token
from test_decoder_parity import hf_embeddings, padded_batch
from tiny_models import make_tiny_decoder

from tolerances import assert_embeddings_match, assert_within_reference_error

import unime
from unime import _C

pytestmark = pytest.mark.gpu

# head_dim must be a multiple of 8 for flash attention; the tiny CPU models use 10 and 14 on purpose,
# so the flash path is exercised by this model (head_dim 16, GQA 4:1, Mistral sliding window).
def _flash_model(window: int | None):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    return MistralForCausalLM(MistralConfig(
        vocab_size=101, hidden_size=128, intermediate_size=200, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=2, sliding_window=window, initializer_range=0.1, attn_implementation="eager")).eval()


@pytest.mark.parametrize("family", ["mistral", "llama"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_cuda_fp32_matches_transformers(tiny_decoder_dir, family, packed):
    hf = make_tiny_decoder(family)
    model = unime.Model.from_pretrained(tiny_decoder_dir(family), device="cuda")
    ids, mask = padded_batch(hf.config.vocab_size, [7, 1, 13, 4, 13], "left")
    ref = hf_embeddings(hf, ids, mask, normalize=False)
    ours = model.encode_ids(ids, mask, normalize=False, packed=packed).cpu()
    assert_embeddings_match(ours, ref, f"cuda {family} {'packed' if packed else 'padded'}")


@pytest.mark.parametrize("window", [None, 6])
@pytest.mark.parametrize("packed", [True, False], ids=["flash-varlen", "padded-sdpa"])
def test_cuda_bf16_within_twice_transformers_error(tmp_path, window, packed):
    hf32 = _flash_model(window)
    hf32.save_pretrained(tmp_path, safe_serialization=True)
    hf16 = _flash_model(window).to("cuda", torch.bfloat16)
    ids, mask = padded_batch(101, [20, 3, 17, 9, 1, 20], "right", seed=4)
    ref = hf_embeddings(hf32, ids, mask)
    hf_err = (hf_embeddings(hf16, ids.cuda(), mask.cuda()).float().cpu() - ref).abs().max().item()
    model = unime.Model.from_pretrained(tmp_path, dtype=torch.bfloat16, device="cuda")
    ours_err = (model.encode_ids(ids, mask, packed=packed).float().cpu() - ref).abs().max().item()
    assert_within_reference_error(ours_err, hf_err, f"window={window} packed={packed} bf16")


def test_cuda_embeddings_backpropagate_through_flash(tmp_path):
    _flash_model(None).save_pretrained(tmp_path, safe_serialization=True)
    model = unime.Model.from_pretrained(tmp_path, dtype=torch.bfloat16, device="cuda")
    w = dict(model.named_parameters())["decoder.layers.0.self_attn.q_proj.weight"]
    w.requires_grad_(True)
    ids, mask = padded_batch(101, [8, 5], "right")
    emb = model.encode_ids(ids, mask)
    (emb[0].float() @ emb[1].float()).backward()  # a similarity, as contrastive losses use
    assert w.grad is not None and torch.isfinite(w.grad.float()).all() and w.grad.abs().sum() > 0


@pytest.mark.parametrize("window", [None, 50, 6], ids=["no-window", "window-longer-than-all", "window-cuts"])
def test_cuda_fp32_head_dim_16_matches_transformers(tmp_path, window):
    """head_dim 16 in fp32: the packed path's memory-efficient varlen call (the loop where the window
    cuts), gradients included: a linear loss's gradient with respect to the first q_proj equals
    transformers'."""
    hf = _flash_model(window)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ids, mask = padded_batch(101, [20, 3, 17, 9, 1, 20], "right", seed=4)
    ref = hf_embeddings(hf, ids, mask, normalize=False)
    model = unime.Model.from_pretrained(tmp_path, device="cuda")
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        w = dict(model.named_parameters())["decoder.layers.0.self_attn.q_proj.weight"]
        w.requires_grad_(True)
        ours = model.encode_ids(ids, mask, normalize=False)
        assert_embeddings_match(ours.detach().cpu(), ref, f"cuda fp32 head_dim 16 window={window}")
        weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))  # a random linear loss
        (ours * weights.cuda()).sum().backward()
        hidden = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        (last_token(hidden, mask) * weights).sum().backward()
        hf_grad = hf.model.layers[0].self_attn.q_proj.weight.grad
        assert (w.grad.cpu() - hf_grad).abs().max() <= 1e-4 * hf_grad.abs().max()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_autocast_casts_before_the_varlen_call(tmp_path):
    """Under CUDA autocast (the trainer's mixed_precision) the projections are bf16 but the rotary's fp32
    tables give fp32 q and k; the varlen call casts all three to bf16, as scaled_dot_product_attention
    does (the memory-efficient kernel would read the bf16 values as fp32). The embeddings stay within
    bf16 error of fp32's and of the per-sequence loop's, and backpropagate."""
    _flash_model(None).save_pretrained(tmp_path, safe_serialization=True)
    model = unime.Model.from_pretrained(tmp_path, device="cuda")
    ids, mask = padded_batch(101, [20, 3, 17, 9, 1, 20], "right", seed=4)
    fp32 = model.encode_ids(ids, mask).float()
    w = dict(model.named_parameters())["decoder.layers.0.self_attn.q_proj.weight"]
    w.requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed = model.encode_ids(ids, mask)
        before = _C._use_cuda_varlen_attention(False)
        try:
            loop = model.encode_ids(ids, mask).float()
        finally:
            _C._use_cuda_varlen_attention(before)
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(mixed.float(), fp32, dim=-1).min() > 0.999
    assert cosine(mixed.float(), loop, dim=-1).min() > 0.999
    mixed.float().sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
