"""LLaVA-NeXT preprocessing against transformers 4.48.3 (the version UniME pins): pixel values of
LlavaNextImageProcessor, the token count of LlavaNextProcessor and the unpadding/packing of
LlavaNextForConditionalGeneration, on synthetic images (noise, gradients) and real photographs
(scikit-image's data folder)."""

import importlib.util
import json
import os
import types

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaNextImageProcessor, LlavaNextProcessor
from transformers.models.llava_next import modeling_llava_next

import unime
from unime import _C
from unime.images import llava_next_preprocess

# llava-hf/llava-v1.6-mistral-7b-hf's preprocessor_config.json.
PREPROCESSOR_CONFIG = {
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "LlavaNextImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "processor_class": "LlavaNextProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 336},
}


@pytest.fixture(scope="module")
def hf():
    keys = {k: v for k, v in PREPROCESSOR_CONFIG.items() if k not in ("image_processor_type", "processor_class")}
    return LlavaNextImageProcessor(**keys)


def hf_pixels(hf, image):
    # channels_last explicitly: transformers guesses channels-first for images 1 or 3 pixels high.
    out = hf(images=[image], input_data_format="channels_last", return_tensors="np")
    return out["pixel_values"][0]


def noise(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def gradient(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.uint8)


# (height, width): square, landscape, portrait, odd, odd padding, tiny (<= 16 px), extreme and large.
SIZES = [
    (336, 336),
    (480, 640),
    (640, 480),
    (1256, 950),
    (335, 1000),
    (1000, 335),
    (501, 777),
    (333, 667),
    (337, 673),
    (100, 97),
    (17, 1023),
    (700, 31),
    (6, 1500),
    (1500, 4),
    (16, 16),
    (9, 14),
    (5, 7),
    (3, 5),
    (2, 2),
    (1, 1),
    (1008, 1008),
    (1344, 1344),
    (2100, 1500),
]


@pytest.mark.parametrize("h,w", SIZES)
def test_pixels_match_transformers_on_noise(hf, h, w):
    a = noise(h, w, seed=h * 1000 + w)
    pixels, layout = _C.llava_next_preprocess(a, PREPROCESSOR_CONFIG)
    ref = hf_pixels(hf, a)
    assert pixels.dtype == torch.float32 and tuple(pixels.shape) == ref.shape
    assert layout["num_patches"] == ref.shape[0]
    # Bit-identical (the brief allows 1e-6; the arithmetic is reproduced exactly).
    np.testing.assert_array_equal(pixels.numpy(), ref)


@pytest.mark.parametrize("h,w", [(480, 640), (335, 1000), (2, 2000), (45, 46)])
def test_pixels_match_transformers_on_gradients(hf, h, w):
    a = gradient(h, w)
    np.testing.assert_array_equal(_C.llava_next_preprocess(a)[0].numpy(), hf_pixels(hf, a))


def test_transformers_misreads_fitted_images_1_or_3_pixels_high(hf):
    # A known transformers 4.48 bug we do not copy: _pad_for_patching calls pad() without
    # input_data_format, so a fitted image of shape (1 or 3, W, 3) is taken as channels-first and
    # padded along the wrong axes (it warns "The channel dimension is ambiguous"). Here 4 x 1500
    # is fitted to 3 x 1008. Our tiles are the intended ones; if transformers ever agrees, this
    # test says so.
    a = noise(4, 1500, 0)
    layout = _C.llava_next_layout(4, 1500)
    assert layout["resized_size"] == (3, 1008)
    ours = _C.llava_next_preprocess(a)[0].numpy()
    ref = hf_pixels(hf, a)
    np.testing.assert_array_equal(ours[0], ref[0])  # the base image is unaffected
    # transformers cuts 5 patches where its own model (image_size_to_num_patches) expects 4.
    assert ours.shape[0] == layout["num_patches"] == 4
    assert ref.shape[0] == 5


def skimage_data(name):
    spec = importlib.util.find_spec("skimage")
    assert spec is not None, "scikit-image (requirements.txt) provides the real test photographs"
    path = os.path.join(os.path.dirname(spec.origin), "data", name)
    assert os.path.exists(path), path
    return path


# Photographs (PNG and JPEG), a greyscale and an RGBA image: decoded by load_image vs by
# transformers from the PIL image.
REAL = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "camera.png", "horse.png"]


@pytest.mark.parametrize("name", REAL)
def test_pixels_match_transformers_on_real_images(hf, name):
    path = skimage_data(name)
    ours = llava_next_preprocess(path, PREPROCESSOR_CONFIG)
    with Image.open(path) as im:
        ref = hf_pixels(hf, im)
        assert ours["image_sizes"].tolist() == [[im.size[1], im.size[0]]]
    np.testing.assert_array_equal(ours["pixel_values"][0].numpy(), ref)


def test_batch_is_padded_like_transformers(hf):
    images = [noise(480, 640, 1), noise(90, 90, 2), noise(50, 400, 3)]
    ours = llava_next_preprocess(images, num_threads=3)
    ref = hf(images=images, input_data_format="channels_last", return_tensors="np")
    np.testing.assert_array_equal(ours["pixel_values"].numpy(), ref["pixel_values"])
    np.testing.assert_array_equal(ours["image_sizes"].numpy(), ref["image_sizes"])
    unpadded = llava_next_preprocess(images, pad=False, num_threads=1)["pixel_values"]
    assert [p.shape[0] for p in unpadded] == [5, 3, 3]


def test_batch_threads_give_the_same_values():
    images = [noise(100 + 37 * i, 300 - 11 * i, i) for i in range(9)]
    single = [_C.llava_next_preprocess(a)[0] for a in images]
    for threads in (1, 4):
        batch = _C.llava_next_preprocess_batch(images, None, threads)
        for (p, _), s in zip(batch, single):
            assert torch.equal(p, s)


def test_batch_error_names_the_image():
    images = [noise(10, 10, 0), np.zeros((10, 10, 3), np.float32)]
    with pytest.raises(ValueError, match="image 1 must have dtype uint8"):
        _C.llava_next_preprocess_batch(images)


# ---- layout: one count for the prompt and the model --------------------------------------------


def processor_token_count(image_processor, h, w):
    """LlavaNextProcessor's count (4.48.3), as llava-hf's processor_config.json sets it up
    (patch_size 14, vision_feature_select_strategy "default", num_additional_image_tokens 1)."""
    proc = LlavaNextProcessor.__new__(LlavaNextProcessor)
    proc.image_processor = image_processor
    proc.patch_size = 14
    proc.num_additional_image_tokens = 1
    proc.vision_feature_select_strategy = "default"
    return proc._get_number_of_features(h, w, 336, 336) - 1  # the "default" strategy's -1


def model_packing(h, w, pinpoints):
    """LlavaNextForConditionalGeneration.pack_image_features (4.48.3) on features that hold their
    own (patch, position) index: returns the packed index sequence for an h x w image."""
    vision = types.SimpleNamespace(image_size=336, patch_size=14)
    model = types.SimpleNamespace(config=types.SimpleNamespace(vision_config=vision, image_grid_pinpoints=pinpoints))
    patches = modeling_llava_next.image_size_to_num_patches((h, w), pinpoints, 336)
    feats = torch.arange(patches * 576, dtype=torch.float64).view(patches, 576, 1)
    packed, lens = modeling_llava_next.LlavaNextForConditionalGeneration.pack_image_features(
        model, [feats], torch.tensor([[h, w]]), "default", torch.tensor([-1.0], dtype=torch.float64)
    )
    return patches, packed[:, 0].long()


def our_packing(layout):
    """The same sequence from our layout: base, then the kept rows of the stitched grid, each row
    followed by a newline (-1)."""
    th, tw = layout["tiles"]
    (r0, r1), (c0, c1) = layout["feature_rows"], layout["feature_cols"]
    out = list(range(576))
    for r in range(r0, r1):
        for c in range(c0, c1):
            tile = 1 + (r // 24) * tw + c // 24
            out.append(tile * 576 + (r % 24) * 24 + c % 24)
        out.append(-1)
    return torch.tensor(out)


@pytest.mark.parametrize("h,w", SIZES + [(480, 640), (950, 1256), (10, 1000), (1000, 10), (4000, 3), (67, 2000)])
def test_layout_matches_processor_count_and_model_unpadding(hf, h, w):
    layout = _C.llava_next_layout(h, w)
    assert layout["num_image_tokens"] == processor_token_count(hf, h, w)
    patches, packed = model_packing(h, w, PREPROCESSOR_CONFIG["image_grid_pinpoints"])
    assert layout["num_patches"] == patches
    assert torch.equal(our_packing(layout), packed)


def test_layout_counts_agree_on_every_small_size(hf):
    # Exhaustive over [1, 120]^2 plus 1500 random sizes up to 6000: our count == the processor's ==
    # the model's unpadded length (576 + rows * (cols + 1)).
    pins = PREPROCESSOR_CONFIG["image_grid_pinpoints"]
    config = _C.LlavaNextImageConfig(PREPROCESSOR_CONFIG)
    rng = np.random.default_rng(0)
    sizes = [(h, w) for h in range(1, 121) for w in range(1, 121)]
    sizes += [tuple(int(v) for v in rng.integers(1, 6001, size=2)) for _ in range(1500)]
    for h, w in sizes:
        layout = _C.llava_next_layout(h, w, config)
        count = layout["num_image_tokens"]
        assert count == processor_token_count(hf, h, w), (h, w)
        gh, gw = modeling_llava_next.get_anyres_image_grid_shape((h, w), pins, 336)
        kept = modeling_llava_next.unpad_image(torch.empty(0, 24 * gh, 24 * gw), (h, w)).shape[1:]
        assert count == 576 + kept[0] * (kept[1] + 1), (h, w)


def test_worked_examples():
    assert _C.llava_next_layout(336, 336)["num_image_tokens"] == 1176
    assert _C.llava_next_layout(480, 640)["num_image_tokens"] == 2340
    assert _C.llava_next_layout(1344, 1344)["num_image_tokens"] == 2928


# ---- configuration -------------------------------------------------------------------------------


def test_config_from_path_directory_and_model_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG))
    a = noise(77, 55, 5)
    ref = _C.llava_next_preprocess(a, PREPROCESSOR_CONFIG)[0]
    assert torch.equal(_C.llava_next_preprocess(a, str(tmp_path / "preprocessor_config.json"))[0], ref)
    assert torch.equal(_C.llava_next_preprocess(a, tmp_path)[0], ref)  # directory, PathLike
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(
        json.dumps({"model_type": "llava_next", "vision_config": {"image_size": 336, "patch_size": 14}})
    )
    assert torch.equal(_C.llava_next_preprocess(a, model_dir)[0], ref)
    cfg = unime.images.LlavaNextImageConfig(str(model_dir / "config.json"))
    assert cfg.crop_size == 336 and cfg.patch_size == 14 and len(cfg.grid_pinpoints) == 5


def test_small_crop_config_matches_transformers():
    # A tiny-model setup: 28-pixel crops, bilinear, other mean/std.
    cfg = dict(
        crop_size={"height": 28, "width": 28},
        size={"shortest_edge": 28},
        image_grid_pinpoints=[[28, 56], [56, 28], [56, 56], [84, 28]],
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.3, 0.4],
        resample=2,
    )
    hf_small = LlavaNextImageProcessor(**cfg)
    for h, w in [(1, 1), (13, 40), (40, 13), (100, 77), (28, 28), (29, 57)]:
        a = noise(h, w, h + w)
        np.testing.assert_array_equal(_C.llava_next_preprocess(a, cfg)[0].numpy(), hf_pixels(hf_small, a))


@pytest.mark.parametrize(
    "config,error,match",
    [
        ({"image_grid_pinpoints": [[336, 500]]}, ValueError, r"image_grid_pinpoints\[0\]"),
        ({"do_normalize": False}, ValueError, "do_normalize"),
        ({"crop_size": "big"}, ValueError, "crop_size"),
        ({"image_mean": [1, 2]}, ValueError, "image_mean"),
        ("/nonexistent/preprocessor_config.json", FileNotFoundError, "nonexistent"),
        (42, ValueError, "image config"),
    ],
)
def test_bad_config(config, error, match):
    with pytest.raises(error, match=match):
        _C.llava_next_preprocess(noise(4, 4, 0), config)


def test_bad_config_file(tmp_path):
    p = tmp_path / "preprocessor_config.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="preprocessor_config.json"):
        _C.LlavaNextImageConfig(str(p))
