"""Qwen2-VL against transformers 4.48.3 (Qwen2VLImageProcessor, Qwen2VLProcessor,
Qwen2VLForConditionalGeneration) on a tiny random model with the real Qwen2 vocabulary: pixels and
image_grid_thw, token ids, M-RoPE positions, and embeddings of text, image, image+text and mixed
batches, padded and packed, in fp32 and bf16; both checkpoint layouts; LoRA and the trainer."""

import copy
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_models import TINY_QWEN2_VL_PIXELS, save_tiny_qwen2_vl_pipeline
from tokenizer_assets import tokenizer_json
from tolerances import assert_embeddings_match, assert_padded_path_matches, assert_within_reference_error

import unime

# (height, width): below min_pixels, above max_pixels, extreme aspect ratios (up to 200), round-half cases.
SIZES = [(28, 28), (30, 30), (56, 56), (41, 97), (97, 41), (60, 90), (120, 40), (200, 200), (333, 500), (500, 333),
         (28, 2000), (2000, 28), (28, 5600), (35, 700), (700, 35), (42, 42), (70, 70), (98, 154), (126, 14 * 13),
         (1000, 1000), (57, 85), (85, 57), (142, 142)]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_qwen2_vl")
    hf, processor = save_tiny_qwen2_vl_pipeline(path, tokenizer_json("qwen2"))
    return hf, processor, unime.Model.from_pretrained(path), path


def image(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed + h * 7 + w).integers(0, 256, (h, w, 3), dtype=np.uint8))


def reference(hf, processor, prompts, images=None, dtype=torch.float32):
    # list(): Qwen2VLProcessor expands the image tokens inside the list it is given
    inputs = processor(text=list(prompts), images=images or None, padding=True, return_tensors="pt")
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    # transformers 4.48 keeps rope_deltas from a model's first forward and, on later calls without
    # cache_position, falls back to 1-D positions; reset it so every call gets get_rope_index's positions.
    hf = hf if dtype == torch.float32 else copy.deepcopy(hf).to(dtype)  # the shared model keeps its fp32 weights
    hf.rope_deltas = None
    with torch.no_grad():
        hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
    return F.normalize(hidden[:, -1].float(), dim=-1), inputs, hidden


@pytest.mark.parametrize("pixels", [TINY_QWEN2_VL_PIXELS, {"min_pixels": 3136, "max_pixels": 12845056},
                                    {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28}],
                         ids=["tiny", "hub-default", "unime-v2"])
def test_pixels_and_grids_equal_the_image_processor(pipeline, pixels, tmp_path):
    from transformers import Qwen2VLImageProcessor

    _, _, model, path = pipeline
    for name in os.listdir(path):
        if name != "preprocessor_config.json":
            os.symlink(os.path.join(path, name), tmp_path / name)
    Qwen2VLImageProcessor(**pixels).save_pretrained(tmp_path)
    ours_model = unime.Model.from_pretrained(tmp_path)
    theirs = Qwen2VLImageProcessor(**pixels)
    sizes = SIZES if pixels is TINY_QWEN2_VL_PIXELS else SIZES[::3]
    for h, w in sizes:
        im = image(h, w)
        try:
            ref = theirs(images=[im], return_tensors="pt")
        except ValueError:  # smart_resize gives a zero side for this aspect ratio under max_pixels
            with pytest.raises(ValueError, match="too elongated"):
                ours_model.process([None], [np.asarray(im)])
            continue
        batch = ours_model.process([None], [np.asarray(im)])
        pixel_values, rh, rw = batch.images[0]
        t, gh, gw = ref["image_grid_thw"][0].tolist()
        assert (t, gh, gw) == (1, rh // 14, rw // 14), (h, w)
        assert torch.equal(pixel_values, ref["pixel_values"]), (h, w)  # bit for bit
        assert (batch.input_ids == 151655).sum() == gh * gw // 4


def test_too_small_and_too_elongated_images_are_refused(pipeline):
    from transformers import Qwen2VLImageProcessor

    _, _, model, _ = pipeline
    for h, w, message in [(27, 100, "at least 28"), (28, 5629, "aspect ratio")]:
        with pytest.raises(ValueError):
            Qwen2VLImageProcessor(**TINY_QWEN2_VL_PIXELS)(images=[image(h, w)])
        with pytest.raises(ValueError, match=message):
            model.encode(images=[np.asarray(image(h, w))])


def prompts_of(model, texts, images, instruction=None):
    return model.process(texts, [None if i is None else np.asarray(i) for i in images],
                         instruction if isinstance(instruction, list) else [instruction] * len(texts)).prompts


# The image+text pair takes the MMEB form (a bare <|image_pad|>): last, so that transformers, which
# would hand its grid to the next image row, computes every row as it would alone.
MIXED = [("a photo of a cat", None), (None, (60, 90)), ("a much longer caption " * 3, None), (None, (200, 200)),
         ("what is in it?", (120, 40))]


def test_token_ids_equal_the_processor(pipeline):
    hf, processor, model, _ = pipeline
    texts = [t for t, _ in MIXED]
    images = [None if s is None else image(*s) for _, s in MIXED]
    prompts = prompts_of(model, texts, images)
    ref = processor(text=list(prompts), images=[i for i in images if i is not None], padding=True,
                    return_tensors="pt")
    batch = model.process(texts, [None if i is None else np.asarray(i) for i in images])
    assert torch.equal(batch.input_ids, ref["input_ids"]) and torch.equal(batch.attention_mask, ref["attention_mask"])
    assert "<|vision_start|><|image_pad|><|vision_end|>" in prompts[1] and prompts[0].startswith("<|im_start|>user\n")
    assert batch.input_ids[0, -1] != 151643  # left padding, no BOS


def test_rope_index_equals_transformers(pipeline):
    hf, processor, model, _ = pipeline
    texts = [t for t, _ in MIXED]
    images = [None if s is None else image(*s) for _, s in MIXED]
    ref = processor(text=list(prompts_of(model, texts, images)), images=[i for i in images if i is not None],
                    padding=True, return_tensors="pt")
    expected, _ = hf.get_rope_index(ref["input_ids"], ref["image_grid_thw"], None, ref["attention_mask"])
    ours = unime._C.qwen2_vl_rope_index(ref["input_ids"], ref["attention_mask"], ref["image_grid_thw"].tolist(),
                                        151655, 151652, 2)
    assert torch.equal(ours, expected)
    text_only = processor(text=["ab", "a b c d"], padding=True, return_tensors="pt")
    expected, _ = hf.get_rope_index(text_only["input_ids"], None, None, text_only["attention_mask"])
    assert torch.equal(unime._C.qwen2_vl_rope_index(text_only["input_ids"], text_only["attention_mask"], [], 151655,
                                                    151652, 2), expected)


@pytest.mark.parametrize("case", ["text", "image", "image+text", "mixed", "instruction"])
def test_embeddings_equal_transformers(pipeline, case):
    hf, processor, model, _ = pipeline
    rows = {"text": [(t, None) for t in ("one", "two words", "a longer text with more tokens in it")],
            "image": [(None, s) for s in [(60, 90), (120, 40), (200, 200), (28, 28)]],
            "image+text": [("what is this?", (60, 90)), ("and this one", (90, 60))],
            "mixed": MIXED,
            # the MMEB form: a bare <|image_pad|> (no <|vision_start|>): 1-D positions, as transformers does
            "instruction": [("a dog", (60, 90)), ("a cat", (60, 90)), ("text only", None)]}[case]
    texts = [t for t, _ in rows]
    images = [None if s is None else image(*s) for _, s in rows]
    instruction = "Find an image caption describing the given image." if case == "instruction" else None
    prompts = prompts_of(model, texts, images, instruction)
    expected, inputs, hidden = reference(hf, processor, prompts, [i for i in images if i is not None])
    ours = model.encode(texts, [None if i is None else np.asarray(i) for i in images], instruction=instruction)
    assert_embeddings_match(ours, expected, f"qwen2_vl {case}")
    # the padded path (transformers' layout) gives the whole last hidden state
    batch = model.process(texts, [None if i is None else np.asarray(i) for i in images],
                          [instruction] * len(texts))
    assert_padded_path_matches(model, batch, expected, hidden, f"qwen2_vl {case}")


def test_bare_image_pad_rows_do_not_shift_later_rows(pipeline):
    """transformers 4.48 gives the batch's grids only to images after <|vision_start|>, so an MMEB-form
    row (bare <|image_pad|>) before a chat-form image row hands that row the wrong grid: its embedding
    then depends on the batch. unime gives each row its own grid: the row's embedding alone."""
    hf, processor, model, _ = pipeline
    texts, sizes = ["what is in it?", None], [(120, 40), (200, 200)]
    images = [image(*s) for s in sizes]
    prompts = prompts_of(model, texts, images)
    batch_ref, _, _ = reference(hf, processor, prompts, images)
    alone_ref, _, _ = reference(hf, processor, prompts[1:], images[1:])
    assert (batch_ref[1] - alone_ref[0]).abs().max() > 1e-3  # transformers' row 1 depends on row 0
    ours = model.encode(texts, [np.asarray(i) for i in images])
    assert_embeddings_match(ours[1:], alone_ref, "qwen2_vl image row after a bare-pad row")
    assert_embeddings_match(ours[:1], batch_ref[:1], "qwen2_vl bare-pad row")


def test_batch_invariance(pipeline):
    _, _, model, _ = pipeline
    texts = [t for t, _ in MIXED]
    images = [None if s is None else np.asarray(image(*s)) for _, s in MIXED]
    together = model.encode(texts, images)
    for i in range(len(texts)):
        alone = model.encode([texts[i]], [images[i]])
        assert (alone[0] - together[i]).abs().max() <= 1e-5


def test_bf16_within_twice_transformers_error(pipeline, tmp_path):
    hf, processor, model, path = pipeline
    texts = [t for t, _ in MIXED]
    images = [None if s is None else image(*s) for _, s in MIXED]
    prompts = prompts_of(model, texts, images)
    expected, _, _ = reference(hf, processor, prompts, [i for i in images if i is not None])
    theirs, _, _ = reference(hf, processor, prompts, [i for i in images if i is not None], torch.bfloat16)
    m16 = unime.Model.from_pretrained(path, dtype=torch.bfloat16)
    ours = m16.encode(texts, [None if i is None else np.asarray(i) for i in images]).float()
    assert_within_reference_error((ours - expected).abs().max().item(), (theirs - expected).abs().max().item(),
                                  "qwen2_vl bf16")


def test_newer_checkpoint_layout_loads_the_same(pipeline, tmp_path):
    """transformers >= 4.52 saves model.language_model.* and model.visual.* (and nests text_config)."""
    from safetensors.torch import load_file, save_file

    _, _, model, path = pipeline
    tensors = load_file(os.path.join(path, "model.safetensors"))
    renamed = {("model.visual." + k[len("visual."):]) if k.startswith("visual.") else
               ("model.language_model." + k[len("model."):]) if k.startswith("model.") else k: v
               for k, v in tensors.items()}
    save_file(renamed, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    config = json.load(open(os.path.join(path, "config.json")))
    text = {k: config.pop(k) for k in list(config) if k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                             "num_attention_heads", "num_key_value_heads",
                                                             "rope_scaling", "rope_theta", "rms_norm_eps",
                                                             "vocab_size", "max_position_embeddings")}
    config["text_config"] = text
    json.dump(config, open(tmp_path / "config.json", "w"))
    for name in ("tokenizer.json", "preprocessor_config.json"):
        os.symlink(os.path.join(path, name), tmp_path / name)
    newer = unime.Model.from_pretrained(tmp_path)
    texts = [t for t, _ in MIXED]
    images = [None if s is None else np.asarray(image(*s)) for _, s in MIXED]
    assert torch.equal(newer.encode(texts, images), model.encode(texts, images))


def test_lora_targets_match_peft_including_the_vision_tower(pipeline):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from tiny_models import make_tiny_qwen2_vl

    _, _, _, path = pipeline
    for targets in (["q_proj", "v_proj"], ["q_proj", "qkv", "fc1"]):
        model = unime.Model.from_pretrained(path)
        ours = {model.hf_module_path(p) for p in model.add_lora(targets)}
        peft_model = get_peft_model(make_tiny_qwen2_vl(), LoraConfig(r=2, target_modules=targets))
        theirs = {k.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
                  for k in get_peft_model_state_dict(peft_model) if k.endswith("lora_A.weight")}
        assert ours == theirs, targets
    model = unime.Model.from_pretrained(path)
    assert all(p.startswith("decoder.") for p in model.add_lora(["q_proj", "qkv"], components=["language_model"]))


def test_trainer_stage2_and_judge_on_qwen2_vl(pipeline, tmp_path):
    """The trainer on this family: stage 2 with LoRA on the language model and the vision tower, and
    UniME-V2's judge objective; the loss falls."""
    from trainer_fixtures import instruct_examples, judge_examples

    def at_least_28_px(examples):  # Qwen2-VL refuses sides below 28 px; the fixtures' images go down to 20
        for ex in examples:
            for x in [ex.query, ex.positive, *ex.negatives, *ex.candidates]:
                if x is not None and x.image is not None:
                    x.image = np.pad(x.image, ((0, max(0, 28 - x.image.shape[0])), (0, max(0, 28 - x.image.shape[1])),
                                               (0, 0)))
        return examples

    _, _, _, path = pipeline
    for stage, data in (("instruct", at_least_28_px(instruct_examples(6, seed=3))),
                        ("judge", at_least_28_px(judge_examples(6, seed=3)))):
        config = dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, batch_size=6, max_steps=20, seed=1,
                      learning_rate=5e-3, temperature=0.05, lora_targets=["q_proj", "v_proj", "qkv"],
                      lora_components=["language_model", "vision_tower"])
        if stage == "instruct":
            config["hard_negatives"] = 3
        t = unime.Trainer(unime.Model.from_pretrained(path), stage, **config)
        modules = {name.rsplit(".lora_", 1)[0] for name, _ in t.trainable_parameters()}
        assert any(m.startswith("visual.") for m in modules) and any(m.startswith("decoder.") for m in modules)
        losses = [t.step(data)["loss"] for _ in range(8)]
        print(f"qwen2_vl {stage}: {losses[0]:.3f} -> {losses[-1]:.3f}")
        assert losses[-1] < 0.7 * losses[0], (stage, losses)
