"""Phi-3.5-V against tests/reference/phi3_v.py (plain PyTorch from the specification, transformers'
CLIP and Phi-3 as parts) and against the original implementation's outputs cached in
tests/data/phi3_v/ (see its README): the HD transform's pixels bit for bit for 24 image shapes at 1, 4
and 16 crops, token counts and ids, and the last token's final hidden state of text, image and
image+text inputs in mixed batches (fp32, bf16, CUDA)."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tokenizers
import torch
import torch.nn.functional as F
from phi3_v_fixture import IMAGES, image, load_oracle, reference_model, save_tiny_checkpoint
from reference import phi3_v as ref
from tokenizer_assets import tokenizer_json
from tolerances import assert_embeddings_match, assert_within_reference_error

import unime

ORACLE = load_oracle()

# (height, width): tiny, square, near-square, the usual photo shapes both ways, and extreme ratios.
SIZES = [(1, 1), (7, 5), (3, 700), (20, 300), (300, 24), (50, 80), (90, 40), (100, 100), (224, 224), (335, 337),
         (336, 336), (337, 335), (480, 640), (640, 480), (333, 1000), (1000, 333), (500, 700), (700, 500),
         (1080, 1920), (1920, 1080), (64, 2048), (2048, 64), (123, 457), (457, 123)]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """num_crops -> tiny checkpoint directory (the same weights, preprocessor_config.json differs)."""
    root = tmp_path_factory.mktemp("phi3v")
    base = save_tiny_checkpoint(str(root / "crops4"), str(tokenizer_json("phi3")), 4)
    out = {4: base}
    for crops in (1, 16):
        other = str(root / f"crops{crops}")
        shutil.copytree(base, other)
        with open(os.path.join(other, "preprocessor_config.json")) as f:
            config = json.load(f)
        with open(os.path.join(other, "preprocessor_config.json"), "w") as f:
            json.dump(dict(config, num_crops=crops), f)
        out[crops] = other
    return out


@pytest.fixture(scope="module")
def reference():
    return reference_model()


@pytest.fixture(scope="module")
def model(checkpoints):
    return unime.Model.from_pretrained(checkpoints[4])


@pytest.mark.parametrize("crops", [1, 4, 16])
def test_hd_transform_pixels_equal_the_reference(checkpoints, crops):
    m = unime.Model.from_pretrained(checkpoints[crops])
    arrays = [image(i, h, w) for i, (h, w) in enumerate(SIZES)]
    batch = m.process([None] * len(arrays), arrays)
    for (h, w), array, (pixels, canvas_h, canvas_w) in zip(SIZES, arrays, batch.images):
        expected, (eh, ew) = ref.preprocess(array, crops)
        what = f"{h}x{w}, {crops} crops"
        assert (canvas_h, canvas_w) == (eh, ew), what
        assert (eh // 336) * (ew // 336) <= crops, what
        assert m.image_token_count(canvas_h, canvas_w) == ref.num_image_tokens(eh, ew), what
        assert torch.equal(pixels, expected), f"{what}: max diff {(pixels - expected).abs().max():.3g}"


@pytest.mark.parametrize("case", ORACLE["images"], ids=lambda c: f"{c['height']}x{c['width']}-crops{c['num_crops']}")
def test_hd_transform_pixels_are_the_originals(checkpoints, case):
    m = unime.Model.from_pretrained(checkpoints[case["num_crops"]])
    batch = m.process([None], [image(case["seed"], case["height"], case["width"])])
    (pixels, h, w), = batch.images
    assert [h, w] == case["image_size"]
    assert m.image_token_count(h, w) == case["num_img_tokens"]
    # The original pads every image to num_crops + 1 crops with zeros; ours stops at the used ones.
    padded = torch.zeros(case["shape"])
    padded[: pixels.shape[0]] = pixels
    assert abs(padded.double().sum().item() - case["sum"]) < 1e-3 * max(1.0, abs(case["sum"]))
    assert abs(pixels[0].double().sum().item() - case["global_sum"]) < 1e-3 * max(1.0, abs(case["global_sum"]))
    assert hashlib.sha256(padded.numpy().tobytes()).hexdigest() == case["sha256"], "pixels differ in some bit"


@pytest.mark.parametrize("index", range(len(ORACLE["prompts"])))
def test_token_ids_are_the_original_processors(model, index):
    case = ORACLE["prompts"][index]
    img = None if case["image"] is None else image(*case["image"])
    batch = model.process([None], [img], prompts=[case["prompt"]])
    assert batch.input_ids[0].tolist() == case["input_ids"]
    assert batch.attention_mask.all()


def test_token_ids_follow_the_reference_layout(model):
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_json("phi3")))
    for case in ORACLE["prompts"]:
        img = None if case["image"] is None else image(*case["image"])
        batch = model.process([None], [img], prompts=[case["prompt"]])
        count = None if img is None else model.image_token_count(*batch.images[0][1:])
        assert batch.input_ids[0].tolist() == ref.token_ids(tok, case["prompt"], count)


def oracle_inputs():
    prompts = [c["prompt"] for c in ORACLE["prompts"]]
    images = [None if c["image"] is None else image(*c["image"]) for c in ORACLE["prompts"]]
    return prompts, images, torch.tensor(ORACLE["embeddings"])


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_embeddings_match_the_original_in_one_mixed_batch(model, side, packed):
    """Text-only rows and images of 2, 3 and 4 crops side by side in one batch."""
    prompts, images, expected = oracle_inputs()
    batch = model.process([None] * len(prompts), images, prompts=prompts, padding_side=side)
    assert batch.rows == list(range(len(prompts)))
    ours = model.encode_ids(batch.input_ids, batch.attention_mask, images=batch.images, normalize=False,
                            packed=packed)
    assert_embeddings_match(ours, expected, f"phi3_v {side} {'packed' if packed else 'padded'}")


def reference_embeddings(model, reference, prompts, images, dtype=torch.float32):
    """The reference's last-token final hidden state of each input alone (unime's ids and pixels,
    which the tests above compare with the reference's own)."""
    out = []
    with torch.no_grad():
        for prompt, img in zip(prompts, images):
            b = model.process([None], [img], prompts=[prompt])
            imgs = [(p.to(dtype), h, w) for p, h, w in b.images]
            out.append(reference.last_hidden_state(b.input_ids, b.attention_mask, imgs)[0, -1].float())
    return torch.stack(out)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_embeddings_match_the_reference_in_one_mixed_batch(model, reference, side, packed):
    prompts, images, _ = oracle_inputs()
    expected = reference_embeddings(model, reference, prompts, images)
    batch = model.process([None] * len(prompts), images, prompts=prompts, padding_side=side)
    ours = model.encode_ids(batch.input_ids, batch.attention_mask, images=batch.images, normalize=False,
                            packed=packed)
    assert_embeddings_match(ours, expected, f"phi3_v vs reference, {side} {'packed' if packed else 'padded'}")


def test_batch_invariance(model):
    prompts, images, _ = oracle_inputs()
    batch = model.encode(prompts=prompts, images=images, normalize=False)
    for i, (p, img) in enumerate(zip(prompts, images)):
        alone = model.encode(prompts=[p], images=[img], normalize=False)
        assert (alone[0] - batch[i]).abs().max() <= 1e-5, f"input {i}"


def test_reference_is_the_original(reference):
    """The tests' reference against the original's cached outputs: the same parameters, pixels and
    embeddings (this is what makes it an oracle for the sizes the cache does not hold)."""
    assert set(reference.released_names()) == set(ORACLE["parameters"])
    for case in ORACLE["images"]:
        pixels, (h, w) = ref.preprocess(image(case["seed"], case["height"], case["width"]), case["num_crops"])
        padded = torch.zeros(case["shape"])
        padded[: pixels.shape[0]] = pixels
        assert [h, w] == case["image_size"] and ref.num_image_tokens(h, w) == case["num_img_tokens"]
        assert hashlib.sha256(padded.numpy().tobytes()).hexdigest() == case["sha256"]
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_json("phi3")))
    with torch.no_grad():
        for case, expected in zip(ORACLE["prompts"], ORACLE["embeddings"]):
            if case["image"] is None:
                ids, imgs = ref.token_ids(tok, case["prompt"], None), []
            else:
                pixels, (h, w) = ref.preprocess(image(*case["image"]), case["num_crops"])
                ids, imgs = ref.token_ids(tok, case["prompt"], ref.num_image_tokens(h, w)), [(pixels, h, w)]
            assert ids == case["input_ids"]
            ids = torch.tensor([ids])
            hidden = reference.last_hidden_state(ids, torch.ones_like(ids), imgs)[0, -1]
            assert (hidden - torch.tensor(expected)).abs().max() <= 1e-4


def test_bf16_error_within_twice_the_references(model, reference, checkpoints):
    prompts, images, _ = oracle_inputs()
    expected = F.normalize(reference_embeddings(model, reference, prompts, images), dim=-1)
    ref16 = reference_model(torch.bfloat16)
    theirs = F.normalize(reference_embeddings(model, ref16, prompts, images, torch.bfloat16), dim=-1)
    m16 = unime.Model.from_pretrained(checkpoints[4], dtype=torch.bfloat16)
    ours = m16.encode(prompts=prompts, images=images).float()
    assert_within_reference_error((ours - expected).abs().max().item(), (theirs - expected).abs().max().item(),
                                  "phi3_v bf16 vs reference")


def test_bf16_error_within_twice_the_originals(checkpoints):
    """bf16 rule: |ours_bf16 - original_fp32| <= 2 |original_bf16 - original_fp32| (max over the examples)."""
    prompts, images, expected = oracle_inputs()
    original_bf16 = torch.tensor(ORACLE["embeddings_bf16"])
    m16 = unime.Model.from_pretrained(checkpoints[4], dtype=torch.bfloat16)
    batch = m16.process([None] * len(prompts), images, prompts=prompts)
    ours = m16.encode_ids(batch.input_ids, batch.attention_mask, images=batch.images, normalize=False).float()
    ref = F.normalize(expected, dim=-1)
    assert_within_reference_error((F.normalize(ours, dim=-1) - ref).abs().max().item(),
                                  (F.normalize(original_bf16, dim=-1) - ref).abs().max().item(), "phi3_v bf16")


def test_encode_api_gives_the_original_embeddings(model):
    prompts, images, expected = oracle_inputs()
    ours = model.encode(prompts=prompts, images=images, batch_size=5)
    torch.testing.assert_close(torch.as_tensor(ours), F.normalize(expected, dim=-1), atol=1e-4, rtol=0)


def test_zero_shot_prompts_use_the_numbered_tag_and_split_bos(model):
    """UniME's prompts for Phi-3.5-V: <|image_1|> in the chat format; the text after the image starts
    with its own BOS, as the original processor tokenizes each piece separately."""
    batch = model.process([None, "a red car"], [image(1, 50, 80), None])
    assert batch.prompts[0] == "<|user|>\n<|image_1|>\nSummary above image in one word:<|end|>\n<|assistant|>\n"
    ids = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    run = [i for i, t in enumerate(ids) if t == -1]
    assert len(run) == model.image_token_count(*batch.images[0][1:]) and run == list(range(run[0], run[-1] + 1))
    assert ids[0] == 1 and ids[run[-1] + 1] == 1  # BOS opens both pieces
    assert "<|image_1|>" not in batch.prompts[1]


def test_bad_inputs_are_named(model):
    with pytest.raises(ValueError, match="too elongated"):
        model.process([None], [np.zeros((1, 3000, 3), np.uint8)])
    with pytest.raises(ValueError, match="not an HD canvas"):
        model.image_token_count(300, 336)
    ids = torch.tensor([[1, -2, 5]])
    with pytest.raises(ValueError, match="not the image placeholder -1"):
        model.encode_ids(ids, torch.ones_like(ids))
    ids = torch.tensor([[1, -1, 5]])
    with pytest.raises(ValueError, match=r"image placeholder\(s\) \(-1\) but no image"):
        model.encode_ids(ids, torch.ones_like(ids))


def test_unsupported_image_embeddings_are_refused(checkpoints, tmp_path):
    path = tmp_path / "other"
    shutil.copytree(checkpoints[4], path)
    with open(path / "config.json") as f:
        config = json.load(f)
    with open(path / "config.json", "w") as f:
        json.dump(dict(config, embd_layer=dict(config["embd_layer"], hd_transform_order="glb_sub")), f)
    with pytest.raises(ValueError, match="embd_layer .* is not supported"):
        unime.Model.from_pretrained(str(path))


def test_crop_counts_cover_the_images():
    assert {(c["seed"], c["num_crops"]) for c in ORACLE["images"]} == {(s, n) for s, _, _ in IMAGES for n in (4, 16)}


def test_trainer_with_lora_on_the_fused_projections(checkpoints, tmp_path):
    """Stage 2 on Phi-3.5-V unchanged: LoRA on qkv_proj / o_proj / gate_up_proj / down_proj (the default
    targets), GradCache's gradients equal the unchunked ones, the loss falls, and the PEFT adapter and
    the merged checkpoint carry the original model's parameter names."""
    from safetensors.torch import load_file
    from trainer_fixtures import instruct_examples

    data = instruct_examples(6, seed=2)

    def trainer(**extra):
        config = dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, batch_size=6, hard_negatives=3, max_steps=20,
                      seed=1, learning_rate=5e-3, temperature=0.05, **extra)
        return unime.Trainer(unime.Model.from_pretrained(checkpoints[4]), "instruct", **config)

    t = trainer(chunk_size=2)
    modules = {name.rsplit(".lora_", 1)[0] for name, _ in t.trainable_parameters()}
    assert {m.rsplit(".", 1)[-1] for m in modules} == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    full = trainer().gradients(data)
    chunked = t.gradients(data)
    scale = max(1.0, max(g.abs().max().item() for g in full.values()))
    assert max((chunked[k] - full[k]).abs().max().item() for k in full) <= 1e-5 * scale
    losses = [t.step(data)["loss"] for _ in range(8)]
    print(f"phi3_v stage 2: {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.5 * losses[0]

    t.save_adapter(tmp_path / "adapter")
    adapter = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    for key in adapter:
        assert key.startswith("base_model.model.") and ".lora_" in key
        module = key[len("base_model.model."):].rsplit(".lora_", 1)[0]
        assert module + ".weight" in ORACLE["parameters"], module
    t.save_merged(tmp_path / "merged")
    merged = unime.Model.from_pretrained(str(tmp_path / "merged"))
    prompts, images, _ = oracle_inputs()
    trained = t.model.encode(prompts=prompts[:4], images=images[:4])
    torch.testing.assert_close(torch.as_tensor(merged.encode(prompts=prompts[:4], images=images[:4])),
                               torch.as_tensor(trained), atol=1e-4, rtol=0)


@pytest.mark.gpu
def test_cuda_embeddings_match_the_original(checkpoints):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    # fp32 on the GPU, not TF32: matrix products and the CLIP patch convolution (cuDNN's TF32 is on by
    # default in torch).
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        m = unime.Model.from_pretrained(checkpoints[4], device="cuda")
        prompts, images, expected = oracle_inputs()
        batch = m.process([None] * len(prompts), images, prompts=prompts)
        ours = m.encode_ids(batch.input_ids.cuda(), batch.attention_mask.cuda(),
                            images=[(p.cuda(), h, w) for p, h, w in batch.images], normalize=False)
        assert_embeddings_match(ours.cpu(), expected, "phi3_v cuda fp32")
        m16 = unime.Model.from_pretrained(checkpoints[4], device="cuda", dtype=torch.bfloat16)
        ours16 = m16.encode(prompts=prompts, images=images)  # a float32 tensor on the model's device
        assert ours16.device.type == "cuda"
        cos = F.cosine_similarity(ours16.cpu(), F.normalize(expected, dim=-1), dim=-1)
        print(f"phi3_v cuda bf16: min cosine to the original fp32 {cos.min():.5f}")
        assert cos.min() > 0.99
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
