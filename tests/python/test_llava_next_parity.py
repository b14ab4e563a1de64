"""LLaVA-NeXT (UniME-LLaVA-1.6's architecture) against transformers 4.48: a tiny random model.

The model is fed transformers' own pixel_values here, so these tests isolate the model maths (CLIP
tower, projector, anyres packing and unpadding, newline rows, scattering into the embeddings,
decoder); tests/python/test_image*.py test the preprocessing that produces the pixels.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference.pooling import last_token
from tiny_models import TINY_LLAVA_IMAGE_TOKEN as IMAGE_TOKEN
from tiny_models import TINY_LLAVA_PINPOINTS as PINPOINTS
from tiny_models import make_tiny_llava_next as make_tiny_llava
from tolerances import assert_embeddings_match, assert_within_reference_error
from transformers import LlavaNextImageProcessor

import unime



@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    model = make_tiny_llava()
    path = tmp_path_factory.mktemp("tiny_llava")
    model.save_pretrained(path, safe_serialization=True)
    return model, str(path)


def hf_processor():
    return LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                   image_grid_pinpoints=PINPOINTS)


def build_inputs(model: unime.Model, sizes, texts, side="left", seed=0):
    """Rows of token ids with one image placeholder run each (None = text only)."""
    rng = np.random.default_rng(seed)
    proc = hf_processor()
    rows, images, hf_pixels, hf_sizes = [], [], [], []
    for size, text in zip(sizes, texts):
        row = [1] + text[:2]
        if size is not None:
            h, w = size
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            out = proc(img, return_tensors="pt")
            pixels = out["pixel_values"][0]
            row += [IMAGE_TOKEN] * model.image_token_count(h, w)
            images.append((pixels, h, w))
            hf_pixels.append(pixels)
            hf_sizes.append([h, w])
        rows.append(row + text[2:])
    L = max(map(len, rows))
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        if side == "left":
            ids[i, L - len(r):], mask[i, L - len(r):] = torch.tensor(r), 1
        else:
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    return ids, mask, images, hf_pixels, hf_sizes


def hf_forward(hf, ids, mask, hf_pixels, hf_sizes):
    kwargs = {}
    if hf_pixels:
        P = max(p.shape[0] for p in hf_pixels)
        padded = torch.zeros(len(hf_pixels), P, *hf_pixels[0].shape[1:])
        for i, p in enumerate(hf_pixels):
            padded[i, : p.shape[0]] = p
        kwargs = dict(pixel_values=padded, image_sizes=torch.tensor(hf_sizes))
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask, output_hidden_states=True, **kwargs).hidden_states[-1]


SIZES = [(28, 28), (40, 70), (70, 33), (17, 90), (56, 56), (9, 13), (100, 31)]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_mixed_text_and_image_batch_matches_transformers(tiny_llava, side, packed):
    hf, path = tiny_llava
    model = unime.Model.from_pretrained(path)
    assert model.image_token_id == IMAGE_TOKEN
    sizes = SIZES + [None, None]
    texts = [[5 + i, 9, 11, 3 + i][: 2 + i % 3] for i in range(len(sizes))]
    ids, mask, images, hf_pixels, hf_sizes = build_inputs(model, sizes, texts, side)
    ref = last_token(hf_forward(hf, ids, mask, hf_pixels, hf_sizes), mask)
    ours = model.encode_ids(ids, mask, images=images, normalize=False, packed=packed)
    assert_embeddings_match(ours, ref, f"llava {side} packed={packed}")


def test_token_counts_match_the_transformers_processor(tiny_llava):
    """Our image_token_count equals what LlavaNextProcessor 4.48 expands <image> to."""
    from transformers import LlavaNextProcessor
    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor as _P  # noqa: F401

    _, path = tiny_llava
    model = unime.Model.from_pretrained(path)
    proc = hf_processor()
    fake = LlavaNextProcessor.__new__(LlavaNextProcessor)
    fake.image_processor, fake.patch_size, fake.vision_feature_select_strategy = proc, 14, "default"
    fake.num_additional_image_tokens = 1  # what llava-hf's processor_config.json sets
    for h, w in SIZES + [(28, 56), (56, 28), (300, 20)]:
        expected = fake._get_number_of_features(h, w, 28, 28) - 1  # __call__ subtracts 1 for "default"
        assert model.image_token_count(h, w) == expected, (h, w)


def test_wrong_placeholder_count_is_a_clear_error(tiny_llava):
    _, path = tiny_llava
    model = unime.Model.from_pretrained(path)
    ids, mask, images, _, _ = build_inputs(model, [(40, 70)], [[5, 6, 7]])
    first = int((ids[0] == IMAGE_TOKEN).nonzero()[0])
    keep = [c for c in range(ids.shape[1]) if c != first]  # one placeholder fewer
    with pytest.raises(ValueError, match="image tokens but the 1 image"):
        model.encode_ids(ids[:, keep], mask[:, keep], images=images)
    with pytest.raises(ValueError, match="no image was given"):
        model.encode_ids(ids, mask)


def test_image_batch_invariance(tiny_llava):
    _, path = tiny_llava
    model = unime.Model.from_pretrained(path)
    sizes = [(40, 70), (17, 90), None]
    texts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    ids, mask, images, _, _ = build_inputs(model, sizes, texts, "right")
    batch = model.encode_ids(ids, mask, images=images)
    k = 0
    for i, size in enumerate(sizes):
        real = mask[i].bool()
        one = [images[k]] if size is not None else []
        k += size is not None
        alone = model.encode_ids(ids[i][real][None], None, images=one)
        assert (alone[0] - batch[i]).abs().max() <= 1e-5, i


def test_newer_checkpoint_key_layout_loads_the_same_model(tiny_llava, tmp_path):
    """transformers >= 4.52 saves LLaVA-NeXT as model.language_model.*, model.vision_tower.*,
    model.multi_modal_projector.*, model.image_newline and lm_head.weight; both layouts load."""
    import json
    import shutil

    import safetensors.torch

    _, path = tiny_llava
    renamed = {}
    for name, t in safetensors.torch.load_file(f"{path}/model.safetensors").items():
        if name.startswith("language_model.model."):
            name = "model.language_model." + name[len("language_model.model."):]
        elif name == "language_model.lm_head.weight":
            name = "lm_head.weight"
        else:
            name = "model." + name
        renamed[name] = t
    safetensors.torch.save_file(renamed, tmp_path / "model.safetensors")
    shutil.copy(f"{path}/config.json", tmp_path / "config.json")
    old, new = unime.Model.from_pretrained(path), unime.Model.from_pretrained(tmp_path)
    assert new.unexpected_tensors == [] and "lm_head.weight" in new.ignored_tensors
    assert json.loads(open(tmp_path / "config.json").read())["model_type"] == "llava_next"
    ids, mask, images, _, _ = build_inputs(old, [(40, 70), None], [[5, 6, 7], [8, 9]])
    torch.testing.assert_close(new.encode_ids(ids, mask, images=images), old.encode_ids(ids, mask, images=images),
                               atol=0, rtol=0)


def test_unused_vision_layers_are_ignored_not_unexpected(tiny_llava):
    """The last CLIP layer and post_layernorm are never computed (feature layer -2): not loaded, and
    reported as ignored rather than unexpected."""
    _, path = tiny_llava
    model = unime.Model.from_pretrained(path)
    assert model.unexpected_tensors == []
    assert any(".encoder.layers.2." in n for n in model.ignored_tensors)
    assert any("post_layernorm" in n for n in model.ignored_tensors)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_within_twice_transformers_error(tiny_llava, dtype):
    """DESIGN's rule for bf16/fp16: |ours - ref_fp32| <= 2 |transformers at that dtype - ref_fp32|."""
    hf, path = tiny_llava
    model32 = unime.Model.from_pretrained(path)
    sizes, texts = [(40, 70), (17, 90), None], [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    ids, mask, images, hf_pixels, hf_sizes = build_inputs(model32, sizes, texts, "left")
    ref = F.normalize(last_token(hf_forward(hf, ids, mask, hf_pixels, hf_sizes), mask), dim=-1)
    hf_low = make_tiny_llava().to(dtype)
    low_pixels = [p.to(dtype) for p in hf_pixels]
    hf_err = (F.normalize(last_token(hf_forward(hf_low, ids, mask, low_pixels, hf_sizes), mask).float(), dim=-1)
              - ref).abs().max().item()
    ours = unime.Model.from_pretrained(path, dtype=dtype).encode_ids(ids, mask, images=images).float()
    ours_err = (ours - ref).abs().max().item()
    assert_within_reference_error(ours_err, hf_err, f"llava {dtype}")
