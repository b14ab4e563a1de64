"""The encoding engine (python/unime/engine.py): token-budget batching, windows prepared on a worker
thread, sub-batches cut from a processed window. Every way of batching the same mixed inputs gives
the same vectors (fp32, 1e-5); test_encode.py checks those vectors against transformers."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

import unime
from unime.engine import plan_batches

WORDS = "a cat sat on the red mat while two dogs ran across an old wooden bridge near the river".split()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava_engine")
    save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    return path


@pytest.fixture(scope="module")
def model(model_dir):
    return unime.Model.from_pretrained(model_dir)


def mixed_inputs(n=13, seed=0):
    """Text-only, image-only and image+text inputs of very different lengths and image sizes."""
    rng = np.random.default_rng(seed)
    texts, images, instructions = [], [], []
    for i in range(n):
        kind = i % 3
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 60))))
        h, w = (int(x) for x in rng.integers(9, 120, size=2))
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        texts.append(None if kind == 1 else text)
        images.append(None if kind == 0 else image)
        instructions.append("Find the matching caption:" if kind == 2 else None)
    return texts, images, instructions


def arrays(images):
    return [None if im is None else np.asarray(im) for im in images]


def test_plan_batches_respects_rows_and_tokens():
    lengths = [5, 40, 3, 12, 12, 100, 1]
    plan = plan_batches(lengths, max_rows=3, max_tokens=30)
    assert sorted(r for b in plan for r in b) == list(range(len(lengths)))  # every row once
    assert plan[0] == [5] and plan[1] == [1]  # longer than the budget: alone, longest first
    for b in plan:
        assert len(b) <= 3
        assert len(b) == 1 or sum(lengths[r] for r in b) <= 30
    assert [lengths[r] for b in plan for r in b] == sorted(lengths, reverse=True)
    assert plan_batches(lengths, max_rows=100, max_tokens=None) == [sorted(range(7), key=lambda r: -lengths[r])]
    assert plan_batches([], 4, 10) == []


def test_every_batching_gives_the_same_vectors(model):
    texts, images, instructions = mixed_inputs()
    one_at_a_time = model.encode(texts, images, instruction=instructions, batch_size=1)
    variants = {
        "default": {},
        "token budget 60": dict(max_batch_tokens=60),
        "token budget 1": dict(max_batch_tokens=1),
        "one window, no budget": dict(batch_size=64, max_batch_tokens=None),
        "windows of 4, no prefetch": dict(batch_size=4, prefetch=False),
    }
    for name, options in variants.items():
        out = model.encode(texts, images, instruction=instructions, **options)
        torch.testing.assert_close(out, one_at_a_time, atol=1e-5, rtol=0, msg=lambda m: f"{name}: {m}")
    # The padded path (transformers' computation) on the same processed batch.
    batch = model.process(texts, arrays(images), instructions)
    padded = model.encode_batch(batch, packed=False)
    torch.testing.assert_close(padded[batch.rows].float(), one_at_a_time, atol=1e-5, rtol=0)


def test_select_trims_padding_and_keeps_images(model):
    texts, images, instructions = mixed_inputs(7, seed=1)
    batch = model.process(texts, arrays(images), instructions)
    lengths = batch.lengths
    assert lengths == [int(x) for x in batch.attention_mask.sum(1)]
    picked = [5, 0, 2]
    sub = batch.select(picked)
    assert sub.rows == [batch.rows[r] for r in picked]
    assert sub.input_ids.shape == (3, max(lengths[r] for r in picked))
    for j, r in enumerate(picked):  # left padding: each row's tokens end at the last column
        n = lengths[r]
        assert torch.equal(sub.input_ids[j, -n:], batch.input_ids[r, -n:])
        assert int(sub.attention_mask[j].sum()) == n
    assert len(sub.images) == sum(images[r] is not None for r in picked)
    torch.testing.assert_close(model.encode_batch(sub), model.encode_batch(batch)[picked], atol=1e-6, rtol=0)
    with pytest.raises(IndexError, match="row 9 of a batch of 7"):
        batch.select([9])


def test_skipped_inputs_and_order_survive_windows(model, tmp_path):
    texts, images, instructions = mixed_inputs(9, seed=2)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    images[4] = str(bad)
    out, skipped = model.encode(texts, images, instruction=instructions, batch_size=2, max_batch_tokens=30,
                                on_error="skip")
    assert [s.index for s in skipped] == [4] and "broken.png" in skipped[0].source
    assert torch.isnan(out[4]).all() and not torch.isnan(out[[0, 1, 2, 3, 5, 6, 7, 8]]).any()
    good = [i for i in range(9) if i != 4]
    alone = model.encode([texts[i] for i in good], [images[i] for i in good],
                         instruction=[instructions[i] for i in good], batch_size=1)
    torch.testing.assert_close(out[good], alone, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"image 4 \(.*broken.png\)"):
        model.encode(texts, images, instruction=instructions, batch_size=2)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        model.encode(texts, images, max_batch_tokens=0)


def test_text_only_model_never_loads_the_vision_tower(model, model_dir):
    text_model = unime.Model.from_pretrained(model_dir, modality="text")
    names = [n for n, _ in text_model.named_parameters()]
    assert names and not any(n.startswith(("vision_tower.", "projector_")) for n in names)
    assert not text_model.unexpected_tensors
    assert any("vision_tower" in n for n in text_model.ignored_tensors)
    assert any("multi_modal_projector" in n for n in text_model.ignored_tensors)
    kept = sum(p.numel() for _, p in text_model.named_parameters())
    assert kept < sum(p.numel() for _, p in model.named_parameters())
    texts = [" ".join(WORDS[:n]) for n in (1, 5, 17)]
    torch.testing.assert_close(text_model.encode(texts), model.encode(texts), atol=0, rtol=0)
    image = Image.new("RGB", (30, 20))
    with pytest.raises(ValueError, match="input 1 has an image.*modality='text'"):
        text_model.encode(["a", None], [None, image])
    with pytest.raises(ValueError, match="modality must be None or 'text'"):
        unime.Model.from_pretrained(model_dir, modality="image")
