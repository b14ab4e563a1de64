"""unime._C.resize_rgb against Pillow's Image.resize (the resampler every HF image processor uses).

Random noise is the hardest case: every tap weight matters, and one rounding difference in a
fixed-point weight shows up as a pixel off by one."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

import unime
from unime import _C

FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def pil_resize(a, h, w, filter):
    return np.asarray(Image.fromarray(a).resize((w, h), FILTERS[filter]))


CASES = [
    # (in_h, in_w, out_h, out_w)
    (480, 640, 336, 336),  # base image of a VGA photo
    (480, 640, 504, 672),  # its anyres resize
    (1256, 950, 1008, 763),  # odd, portrait, downscale
    (7, 5, 336, 336),  # tiny upscale
    (1, 1, 3, 3),
    (1, 9, 1, 4),
    (16, 16, 336, 672),
    (336, 335, 337, 336),  # the 4.48 short tile's shortest-edge resize
    (335, 336, 336, 337),
    (2000, 3000, 224, 224),  # strong antialiasing
    (100, 100, 100, 37),  # horizontal pass only
    (100, 100, 41, 100),  # vertical pass only
    (33, 1000, 4, 1008),  # extreme aspect
    (999, 1, 1008, 2),
    # Horizontal passes with 8 or more taps run on int32 planes (csrc/core/image/resample.cc): around
    # the switch (bicubic 9 taps at a 1.52x downscale, 7 at 1.49x; bilinear 9 at 3.3x) and a phone photo.
    (50, 100, 50, 66),
    (50, 100, 50, 67),
    (40, 1000, 40, 300),
    (3024, 4032, 504, 672),
]


@pytest.mark.parametrize("filter", sorted(FILTERS))
@pytest.mark.parametrize("in_h,in_w,out_h,out_w", CASES)
def test_resize_matches_pillow_on_noise(in_h, in_w, out_h, out_w, filter):
    a = noise(in_h, in_w, seed=in_h * 7 + in_w)
    ours = _C.resize_rgb(a, out_h, out_w, filter)
    assert ours.dtype == np.uint8 and ours.shape == (out_h, out_w, 3)
    np.testing.assert_array_equal(ours, pil_resize(a, out_h, out_w, filter))


def test_resize_matches_pillow_on_gradient_and_edges():
    y, x = np.mgrid[0:301, 0:517]
    a = np.stack([(x * 255 // 516), (y * 255 // 300), ((x // 8 + y // 8) % 2) * 255], -1).astype(np.uint8)
    for out in [(150, 258), (602, 1034), (336, 336), (97, 1003)]:
        np.testing.assert_array_equal(_C.resize_rgb(a, *out, "bicubic"), pil_resize(a, *out, "bicubic"))


@settings(max_examples=60, deadline=None)
@given(
    in_h=st.integers(1, 70),
    in_w=st.integers(1, 70),
    out_h=st.integers(1, 90),
    out_w=st.integers(1, 90),
    filter=st.sampled_from(sorted(FILTERS)),
    seed=st.integers(0, 2**16),
)
def test_resize_matches_pillow_property(in_h, in_w, out_h, out_w, filter, seed):
    a = noise(in_h, in_w, seed)
    np.testing.assert_array_equal(_C.resize_rgb(a, out_h, out_w, filter), pil_resize(a, out_h, out_w, filter))


def test_resize_accepts_strided_arrays():
    a = noise(60, 80, 3)
    view = a[::2, ::-1]  # not C-contiguous
    expected = pil_resize(np.ascontiguousarray(view), 17, 23, "bicubic")
    np.testing.assert_array_equal(_C.resize_rgb(view, 17, 23), expected)
    # The Python wrapper takes any load_image input.
    np.testing.assert_array_equal(unime.images.resize_rgb(Image.fromarray(a), 17, 23), pil_resize(a, 17, 23, "bicubic"))


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.zeros((4, 4, 3), np.float32), 2, 2), "uint8"),
        ((np.zeros((4, 4), np.uint8), 2, 2), r"\(H, W, 3\)"),
        ((np.zeros((4, 4, 4), np.uint8), 2, 2), r"\(H, W, 3\)"),
        ((np.zeros((0, 4, 3), np.uint8), 2, 2), r"\(H, W, 3\)"),
        ((np.zeros((4, 4, 3), np.uint8), 0, 2), "out_h"),
        ((np.zeros((4, 4, 3), np.uint8), 2, -5), "out_w"),
        (([[1, 2, 3]], 2, 2), "numpy uint8 array"),
    ],
)
def test_resize_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        _C.resize_rgb(*args)


def test_resize_rejects_unknown_filter():
    with pytest.raises(ValueError, match="filter"):
        _C.resize_rgb(noise(4, 4), 2, 2, "lanczos")
