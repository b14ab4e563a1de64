"""The Llama/Mistral decoder against Hugging Face transformers (the oracle), fp32 and bf16."""

import os

import pytest
import torch
import torch.nn.functional as F
from reference.pooling import embed as reference_embed
from reference.pooling import last_token
from tiny_models import TINY_DECODERS, make_tiny_decoder

from tolerances import EMBEDDING_MAX_ABS, assert_embeddings_match, assert_within_reference_error

import unime

FAMILIES = sorted(TINY_DECODERS)


def padded_batch(vocab: int, lengths: list[int], side: str, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    ids = torch.zeros(len(lengths), L, dtype=torch.long)
    mask = torch.zeros(len(lengths), L, dtype=torch.long)
    for i, n in enumerate(lengths):
        row = torch.randint(1, vocab, (n,), generator=g)
        if side == "left":
            ids[i, L - n :], mask[i, L - n :] = row, 1
        else:
            ids[i, :n], mask[i, :n] = row, 1
    return ids, mask


def hf_embeddings(hf_model, ids, mask, normalize=True):
    with torch.no_grad():
        hidden = hf_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    pooled = last_token(hidden, mask)
    return F.normalize(pooled, dim=-1) if normalize else pooled


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_fp32_parity_with_transformers(tiny_decoder_dir, family, side, packed):
    hf = make_tiny_decoder(family)
    model = unime.Model.from_pretrained(tiny_decoder_dir(family), dtype=torch.float32)
    ids, mask = padded_batch(hf.config.vocab_size, [7, 1, 13, 4, 13], side)

    ours_raw = model.encode_ids(ids, mask, normalize=False, packed=packed)
    ref_raw = hf_embeddings(hf, ids, mask, normalize=False)
    ours = model.encode_ids(ids, mask, packed=packed)
    ref = hf_embeddings(hf, ids, mask)
    what = f"{family}/{side}/{'packed' if packed else 'padded'}"
    assert_embeddings_match(ours_raw, ref_raw, what + " raw")
    assert_embeddings_match(ours, ref, what + " normalised")
    # The whole last hidden state agrees at every real position too.
    with torch.no_grad():
        ref_hidden = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    real = mask.bool()
    assert (model.last_hidden_state(ids, mask)[real] - ref_hidden[real]).abs().max() <= EMBEDDING_MAX_ABS


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_item_alone_equals_item_in_batch(tiny_decoder_dir, family, side, packed):
    model = unime.Model.from_pretrained(tiny_decoder_dir(family))
    vocab = model.config["vocab_size"]
    ids, mask = padded_batch(vocab, [5, 11, 2, 9], side)
    batch = model.encode_ids(ids, mask, packed=packed)
    for i in range(ids.shape[0]):
        real = mask[i].bool()
        alone = model.encode_ids(ids[i][real][None], None, packed=packed)
        assert (alone[0] - batch[i]).abs().max() <= 1e-5, f"row {i}"


@pytest.mark.parametrize("longest", [12, 13], ids=["short-factors", "long-factors"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_longrope_on_both_sides_of_the_switch(tiny_decoder_dir, longest, side, packed):
    """Phi-3's LongRoPE: short factors while the call's longest position + 1 <= original length (12),
    long factors for every row once it exceeds it, as transformers' Phi3RotaryEmbedding decides per call."""
    hf = make_tiny_decoder("phi3_longrope")
    model = unime.Model.from_pretrained(tiny_decoder_dir("phi3_longrope"))
    ids, mask = padded_batch(hf.config.vocab_size, [7, 1, longest, 4], side, seed=5)
    what = f"phi3 longrope, longest {longest}, {side}, {'packed' if packed else 'padded'}"
    assert_embeddings_match(model.encode_ids(ids, mask, normalize=False, packed=packed),
                            hf_embeddings(hf, ids, mask, normalize=False), what)


def test_longrope_long_factors_change_short_rows(tiny_decoder_dir):
    """The switch is real: the same 7-token row embeds differently next to a 13-token row than alone."""
    model = unime.Model.from_pretrained(tiny_decoder_dir("phi3_longrope"))
    ids, mask = padded_batch(101, [7, 13], "right", seed=5)
    in_long_batch = model.encode_ids(ids, mask)[0]
    alone = model.encode_ids(ids[:1, :7], None)[0]
    assert (in_long_batch - alone).abs().max() > 1e-3


def test_longrope_su_spelling_and_refusals(tiny_decoder_dir, tmp_path):
    import json
    import shutil

    src = tiny_decoder_dir("phi3_longrope")
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    assert config["rope_scaling"]["type"] == "longrope"  # transformers renames "su" when it saves
    ids, mask = padded_batch(101, [7, 13], "left", seed=5)
    expected = unime.Model.from_pretrained(src).encode_ids(ids, mask)
    for rope_type, error in (("su", None), ("yarn", "ambiguous"), ("dynamic", "not supported")):
        path = tmp_path / rope_type
        shutil.copytree(src, path)
        with open(path / "config.json", "w") as f:
            json.dump(dict(config, rope_scaling=dict(config["rope_scaling"], type=rope_type)), f)
        if error is None:
            torch.testing.assert_close(unime.Model.from_pretrained(str(path)).encode_ids(ids, mask), expected,
                                       atol=0, rtol=0)
        else:
            with pytest.raises(ValueError, match=error):
                unime.Model.from_pretrained(str(path))


def test_sliding_window_shorter_than_sequences(tmp_path):
    """Mistral's window (key j visible from query i when i - j < window) in both paths."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    hf = MistralForCausalLM(MistralConfig(
        vocab_size=50, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, sliding_window=5, initializer_range=0.2, attn_implementation="eager")).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = unime.Model.from_pretrained(tmp_path)
    ids, mask = padded_batch(50, [12, 4, 9], "right", seed=5)
    ref = hf_embeddings(hf, ids, mask, normalize=False)
    for packed in (True, False):
        torch.testing.assert_close(model.encode_ids(ids, mask, normalize=False, packed=packed), ref,
                                   atol=1e-4, rtol=0)


def test_padding_inside_a_row_is_rejected_by_the_packed_path(tiny_decoder_dir):
    model = unime.Model.from_pretrained(tiny_decoder_dir("llama"))
    with pytest.raises(ValueError, match="row 0 has padding inside"):
        model.encode_ids(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 0, 1]]))


def test_mixed_padding_matches_reference_pooling(tiny_decoder_dir):
    """A mask that is neither purely left nor right padded still pools the last real token."""
    hf = make_tiny_decoder("mistral")
    model = unime.Model.from_pretrained(tiny_decoder_dir("mistral"))
    ids, _ = padded_batch(hf.config.vocab_size, [6, 6], "right")
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        hidden = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(model.encode_ids(ids, mask), reference_embed(hidden, mask), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_error_within_twice_transformers_bf16_error(tiny_decoder_dir, family):
    """bf16 rule (flash-attention's): |ours_bf16 - ref_fp32| <= 2 |hf_bf16 - ref_fp32|."""
    hf32 = make_tiny_decoder(family)
    hf16 = make_tiny_decoder(family).to(torch.bfloat16)
    ours16 = unime.Model.from_pretrained(tiny_decoder_dir(family), dtype=torch.bfloat16)
    assert ours16.dtype == torch.bfloat16
    ids, mask = padded_batch(hf32.config.vocab_size, [9, 3, 14, 14, 6, 1], "right", seed=3)
    ref = hf_embeddings(hf32, ids, mask)
    hf_err = (hf_embeddings(hf16, ids, mask).float() - ref).abs().max().item()
    ours_err = (ours16.encode_ids(ids, mask).float() - ref).abs().max().item()
    assert_within_reference_error(ours_err, hf_err, f"{family} bf16")


def test_embeddings_keep_autograd_graph(tiny_decoder_dir):
    model = unime.Model.from_pretrained(tiny_decoder_dir("llama"))
    params = dict(model.named_parameters())
    w = params["decoder.norm.weight"]
    w.requires_grad_(True)
    try:
        ids, mask = padded_batch(model.config["vocab_size"], [4, 6], "left")
        emb = model.encode_ids(ids, mask)
        (emb @ emb.T).sum().backward()
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    finally:
        w.requires_grad_(False)
        w.grad = None
