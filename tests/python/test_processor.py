"""The C++ processor that builds every batch: length limits (refuse naming the input, or truncate as
transformers does), per-input errors, prompts (stage 1, custom templates), padding sides, and the
same ids as transformers' tokenizer. Token-id and pixel parity with LlavaNextProcessor is in
test_encode.py."""

import time

import numpy as np
import pytest
import torch
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

import unime


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    path = tmp_path_factory.mktemp("processor_llava")
    _, processor = save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    return unime.Model.from_pretrained(path), processor


def image(h=30, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_an_input_over_the_model_maximum_is_refused_by_name_before_any_compute(llava):
    model, _ = llava
    assert model.max_length == 32768  # LLaVA-1.6-Mistral's max_position_embeddings
    huge = "lorem ipsum dolor sit amet " * 7700  # 200,000 characters
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"input 1: \d+ tokens \(\d+ text \+ 0 image\) are more than max_length 32768"):
        model.encode(texts=["short", huge, "short"])
    assert time.perf_counter() - start < 30  # tokenised and refused, never run through the model
    emb, skipped = model.encode(texts=["short", huge, "short"], on_error="skip")
    assert [s.index for s in skipped] == [1] and "max_length" in skipped[0].reason and skipped[0].source == "text"
    assert torch.isnan(emb[1]).all() and torch.isfinite(emb[[0, 2]]).all()


def test_truncation_cuts_the_end_like_transformers(llava):
    model, processor = llava
    text = "one two three four five six seven eight nine ten eleven twelve"
    prompt = f"[INST] {text}\nSummary above sentence in one word: [/INST]"
    for n in (5, 12, 40):
        ours = model.process([text], [None], max_length=n, truncate=True).input_ids[0].tolist()
        ref = processor.tokenizer(prompt, truncation=True, max_length=n)["input_ids"]
        assert ours == ref, n
    with pytest.raises(ValueError, match="more than max_length 5"):
        model.process([text], [None], max_length=5)


def test_truncation_never_cuts_an_image(llava):
    model, _ = llava
    batch = model.process([None], [image()])
    n = batch.input_ids.shape[1]
    assert model.process([None], [image()], max_length=n - 1, truncate=True).input_ids.shape[1] == n - 1
    with pytest.raises(ValueError, match="would cut the image's tokens"):
        model.process([None], [image()], max_length=10, truncate=True)


def test_strings_that_are_not_unicode_are_named(llava):
    model, _ = llava
    with pytest.raises(ValueError, match=r"input 2: text cannot be encoded as UTF-8"):
        model.process(["a", "b", "bad \ud800 surrogate"], [None] * 3)
    with pytest.raises(ValueError, match=r"input 1: instruction must be str"):
        model.process(["a", "b"], [None, None], [None, 5])
    with pytest.raises(ValueError, match=r"input 0 has neither"):
        model.process([None], [None])


def test_skip_errors_reports_inputs_and_keeps_the_rest(llava):
    model, _ = llava
    limit = model.process(["fine"], [None]).input_ids.shape[1]
    batch = model.process(["ok", "many words " * 10, "fine"], [None] * 3, max_length=limit, skip_errors=True)
    assert batch.rows == [0, 2] and [i for i, _ in batch.errors] == [1]
    assert batch.input_ids.shape[0] == 2


def test_stage_one_prompt_custom_templates_and_padding(llava):
    model, _ = llava
    b = model.process(["A man sleeps."], [None], prompt="distill")
    assert b.prompts == ["[INST] A man sleeps.\nSummary above sentences in one word: [/INST]"]
    b = model.process(["A man sleeps.", None], [None, image()], image_template="{image} Describe.",
                      text_template="{text} Summary above sentences in one word: \n")
    assert b.prompts == ["A man sleeps. Summary above sentences in one word: \n", "<image> Describe."]
    with pytest.raises(ValueError, match=r"input 0: .*no \{text\} slot"):
        model.process(["x"], [None], text_template="no slot")
    left = model.process(["a", "a much longer sentence here"], [None, None])
    right = model.process(["a", "a much longer sentence here"], [None, None], padding_side="right")
    assert left.attention_mask[0, -1] == 1 and left.attention_mask[0, 0] == 0
    assert right.attention_mask[0, 0] == 1 and right.attention_mask[0, -1] == 0
    torch.testing.assert_close(model.encode_batch(left), model.encode_batch(right), atol=1e-5, rtol=0)
    # Padding positions hold the checkpoint's pad id (32001, as llava-hf's processor pads).
    assert left.input_ids[0, 0] == 32001 == model.processor.pad_token_id


def test_text_only_models_refuse_images(tiny_decoder_dir, tmp_path):
    import shutil

    path = tmp_path / "m"
    shutil.copytree(tiny_decoder_dir("mistral"), path)
    shutil.copy(tokenizer_json("mistral_legacy"), path / "tokenizer.json")
    model = unime.Model.from_pretrained(path)
    assert model.processor is not None and not model.processor.takes_images
    with pytest.raises(ValueError, match="input 0: model_type 'mistral' is text-only"):
        model.process([None], [image()])
    assert model.process(["plain"], [None]).prompts == ["plain"]
