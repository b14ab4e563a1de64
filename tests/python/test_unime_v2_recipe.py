"""UniME-V2's inference through the "unime_v2" recipe, against its procedure (utils/utils.py
prepare_stage_data, README) on transformers 4.48: texts as they are, images resized to 1344 x 1344
with PIL's default BICUBIC and prompted "<|image_pad|> Find an image caption describing the given
image.", Qwen2VLForConditionalGeneration's forward (a bare <|image_pad|> gets 1-D positions), the
last token of the left-padded batch L2-normalised. A tiny random Qwen2-VL with the real Qwen2
vocabulary; its image processor keeps its own pixel limits, as UniME-V2's does."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_models import save_tiny_qwen2_vl_pipeline
from tokenizer_assets import tokenizer_json
from tolerances import assert_embeddings_match

import unime

IMAGE_PROMPT = "<|image_pad|> Find an image caption describing the given image."


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_unime_v2")
    hf, processor = save_tiny_qwen2_vl_pipeline(path, tokenizer_json("qwen2"))
    return hf, processor, unime.Model.from_pretrained(path, recipe="unime_v2"), path


def image(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed + h * 3 + w).integers(0, 256, (h, w, 3), dtype=np.uint8))


def reference(hf, processor, prompts, images):
    inputs = processor(text=list(prompts), images=[im.resize((1344, 1344)) for im in images] or None, padding=True,
                       truncation=True, max_length=4096, return_tensors="pt")
    hf.rope_deltas = None  # transformers 4.48 keeps them from an earlier call otherwise
    with torch.no_grad():
        hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
    return F.normalize(hidden[:, -1], dim=-1), inputs


def arrays(images):
    return [None if i is None else np.asarray(i) for i in images]


def test_prompts_are_unime_v2s(v2):
    _, _, model, _ = v2
    assert model.recipe == "unime_v2"
    batch = model.process(["a red car", None], arrays([None, image(50, 60)]), [None, None])
    assert batch.prompts == ["a red car", IMAGE_PROMPT]


@pytest.mark.parametrize("size", [(60, 90), (1344, 1344), (2000, 300), (20, 20)], ids=str)
def test_pixels_equal_the_1344_resize_then_the_processor(v2, size):
    _, processor, model, _ = v2
    picture = image(*size)
    expected = processor.image_processor(images=[picture.resize((1344, 1344))], return_tensors="pt")
    pixels, h, w = model.process([None], [np.asarray(picture)], [None]).images[0]
    assert [1, h // 14, w // 14] == expected["image_grid_thw"][0].tolist()
    assert torch.equal(pixels, expected["pixel_values"])


def test_embeddings_equal_unime_v2s_procedure(v2):
    hf, processor, model, _ = v2
    texts = ["a dog running on the beach", "two cats", "a much longer caption about a city street at night " * 2]
    images = [image(60, 90), image(300, 200, seed=1)]
    expected, inputs = reference(hf, processor, texts, [])
    assert torch.equal(model.process(texts, [None] * 3, [None] * 3).input_ids, inputs["input_ids"])
    assert_embeddings_match(model.encode(texts), expected, "unime_v2 texts")
    expected, inputs = reference(hf, processor, [IMAGE_PROMPT] * 2, images)
    assert_embeddings_match(model.encode(images=arrays(images)), expected, "unime_v2 images")
    batch = model.process([None, None], arrays(images), [None, None])
    assert torch.equal(batch.input_ids, inputs["input_ids"])
    padded = model.encode_ids(batch.input_ids, batch.attention_mask, images=batch.images, packed=False)
    assert_embeddings_match(padded, expected, "unime_v2 images padded")
    # a mixed batch: each input as in its own batch
    mixed = model.encode([texts[0], None], arrays([None, images[0]]))
    assert_embeddings_match(mixed[0:1], reference(hf, processor, texts[:1], [])[0], "unime_v2 mixed text")
    assert_embeddings_match(mixed[1:2], reference(hf, processor, [IMAGE_PROMPT], images[:1])[0], "unime_v2 mixed image")


def test_instructions_take_the_mmeb_form_of_its_training_rows(v2):
    hf, processor, model, _ = v2
    instruction = "Represent the given image with the following question:"
    batch = model.process(["what is it?"], arrays([image(64, 64)]), [instruction])
    assert batch.prompts == [f"<|image_pad|>\n{instruction} what is it?\n"]
    expected, _ = reference(hf, processor, batch.prompts, [image(64, 64)])
    assert_embeddings_match(model.encode(["what is it?"], arrays([image(64, 64)]), instruction=instruction), expected,
                            "unime_v2 instruction")


def test_its_4096_token_limit(v2):
    _, _, model, _ = v2
    long_text = " ".join(f"w{i}" for i in range(2500))
    with pytest.raises(ValueError, match="more than max_length 4096"):
        model.encode([long_text])
    assert model.process([long_text], [None], [None], truncate=True).input_ids.shape[1] == 4096


def test_a_merged_checkpoint_keeps_its_recipe(v2, tmp_path):
    """UniME-V2's checkpoints carry no mark, so a model merged under the recipe records it
    (unime_recipe.json) and loads with it again; a model merged under "default" records none."""
    _, _, _, path = v2
    model = unime.Model.from_pretrained(path, recipe="unime_v2")
    model.add_lora(["q_proj", "v_proj"], r=2, alpha=4, init="gaussian", seed=3)
    model.save_merged(tmp_path / "merged")
    merged = unime.Model.from_pretrained(tmp_path / "merged")
    assert merged.recipe == "unime_v2"
    torch.testing.assert_close(merged.encode(["a red car"]), model.encode(["a red car"]), atol=1e-5, rtol=0)
    assert unime.Model.from_pretrained(tmp_path / "merged", recipe="default").recipe == "default"
    plain = unime.Model.from_pretrained(tmp_path / "merged", recipe="default")
    plain.save_merged(tmp_path / "merged_default")
    assert unime.Model.from_pretrained(tmp_path / "merged_default").recipe == "default"
