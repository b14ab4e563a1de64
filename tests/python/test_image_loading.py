"""unime.images.load_image / load_images: every PIL mode converted as transformers 4.48 does,
arrays and tensors, the pixel cap, corrupt and truncated files, EXIF orientation, error reports,
files decoded on several threads (decode_each)."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaNextImageProcessor

from unime.images import decode_each, load_image, load_images, llava_next_preprocess


@pytest.fixture(scope="module")
def hf():
    return LlavaNextImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})


def noise_rgb(h=37, w=53, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def image_in_mode(mode):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(noise_rgb())
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, size=(37, 53), dtype=np.uint16), mode="I;16")
    if mode == "I":
        return Image.fromarray(rng.integers(-1000, 70000, size=(37, 53), dtype=np.int32), mode="I")
    if mode == "F":
        return Image.fromarray(rng.uniform(-20, 300, size=(37, 53)).astype(np.float32), mode="F")
    if mode in ("LA", "RGBA", "PA"):
        base = rgb.convert({"LA": "L", "RGBA": "RGB", "PA": "P"}[mode])
        base.putalpha(Image.fromarray(rng.integers(0, 256, size=(37, 53), dtype=np.uint8)))
        return base
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=50)
    return rgb.convert(mode)


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_matches_transformers(hf, mode):
    im = image_in_mode(mode)
    assert im.mode == mode
    arr = load_image(im)
    assert arr.dtype == np.uint8 and arr.shape == (37, 53, 3) and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, np.asarray(im.convert("RGB")))
    ref = hf(images=[im], input_data_format="channels_last", return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(llava_next_preprocess(arr)["pixel_values"][0].numpy(), ref)


@pytest.mark.parametrize(
    "mode,fmt",
    [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("I;16", "PNG"),
     ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("RGB", "JPEG"), ("L", "JPEG"), ("P", "GIF"), ("RGB", "WEBP")],
)
def test_files_decode_like_transformers(hf, tmp_path, mode, fmt):
    path = tmp_path / f"image.{fmt.lower()}"
    image_in_mode(mode).save(path, fmt)
    with Image.open(path) as im:
        ref = hf(images=[im], input_data_format="channels_last", return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(llava_next_preprocess(str(path))["pixel_values"][0].numpy(), ref)


def test_arrays_and_tensors():
    rgb = noise_rgb()
    np.testing.assert_array_equal(load_image(rgb), rgb)
    gray = rgb[:, :, 0]
    expected_gray = np.asarray(Image.fromarray(gray).convert("RGB"))
    np.testing.assert_array_equal(load_image(gray), expected_gray)
    np.testing.assert_array_equal(load_image(gray[:, :, None]), expected_gray)
    rgba = np.concatenate([rgb, rgb[:, :, :1]], axis=2)
    np.testing.assert_array_equal(load_image(rgba), np.asarray(Image.fromarray(rgba).convert("RGB")))
    t = torch.from_numpy(rgb)
    np.testing.assert_array_equal(load_image(t), rgb)  # (H, W, 3)
    np.testing.assert_array_equal(load_image(t.permute(2, 0, 1)), rgb)  # (3, H, W)
    np.testing.assert_array_equal(load_image(torch.from_numpy(gray)), expected_gray)
    np.testing.assert_array_equal(load_image(torch.from_numpy(gray)[None]), expected_gray)  # (1, H, W)
    # (3, W, 3) is ambiguous: documented as channels-first.
    cube = torch.arange(27, dtype=torch.uint8).view(3, 3, 3)
    np.testing.assert_array_equal(load_image(cube), cube.permute(1, 2, 0).numpy())


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "no pixels"),
        (torch.zeros(3, 4, 4), "torch.uint8"),
    ],
)
def test_bad_arrays(bad, match):
    with pytest.raises(ValueError, match=match):
        load_image(bad)
    with pytest.raises(TypeError, match="unsupported image type"):
        load_image(12)


def png_header_only(width, height):
    """A PNG whose header claims width x height RGB and whose pixel data stops after 10 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    # The first bytes of an IDAT chunk, so that Pillow's open() (which stops at IDAT) succeeds.
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 100000) + b"IDAT" + b"\x78\x9c" + b"\x00" * 8


def test_pixel_cap_is_checked_before_decoding(tmp_path):
    # 9000 x 9000 = 81 MP: over our 64 MP default, under Pillow's bomb limits. The file has no pixel
    # data at all, so reaching the decoder would give a truncation error instead.
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(9000, 9000))
    with pytest.raises(ValueError, match=r"huge.png: image is 9000x9000 = 81000000 pixels, over the limit"):
        load_image(str(path))
    small = tmp_path / "small.png"
    Image.fromarray(noise_rgb(40, 50)).save(small)
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(small, max_pixels=1999)
    assert load_image(small, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(ValueError, match="over the limit"):
        load_image(noise_rgb(40, 50), max_pixels=100)
    # Beyond Pillow's own bomb limit: still a ValueError naming the file.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(100000, 100000))
    with pytest.raises(ValueError, match="bomb.png"):
        load_image(bomb)


def encoded(fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(noise_rgb(64, 64)).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "TIFF"])
def test_truncated_files_name_the_file(tmp_path, fmt):
    data = encoded(fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"cut.{fmt.lower()}"):
        load_image(path)


def test_corrupt_missing_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="garbage.jpg: not a readable image"):
        load_image(garbage)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        load_image(empty)
    # A valid JPEG header with its entropy-coded data overwritten.
    data = bytearray(encoded("JPEG"))
    data[len(data) // 2 : len(data) // 2 + 200] = b"\xff\xd9" * 100
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(bytes(data))
    try:
        arr = load_image(broken)  # libjpeg may recover garbage silently, as Pillow does...
        assert arr.shape == (64, 64, 3)
    except ValueError as e:  # ...or report it; never anything but ValueError
        assert "broken.jpg" in str(e)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="directory"):
        load_image(tmp_path)


def test_exif_orientation_is_ignored_by_default_like_transformers(hf, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(noise_rgb(30, 50)).save(path, exif=exif.tobytes())
    assert load_image(path).shape == (30, 50, 3)
    with Image.open(path) as im:
        ref = hf(images=[im], input_data_format="channels_last", return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(llava_next_preprocess(path)["pixel_values"][0].numpy(), ref)
    rotated = load_image(path, apply_exif_orientation=True)
    assert rotated.shape == (50, 30, 3)
    np.testing.assert_array_equal(rotated, np.rot90(load_image(path), k=-1))


def test_load_images_raise_and_skip(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(noise_rgb()).save(good)
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    items = [good, noise_rgb(5, 6), tmp_path / "missing.png", bad, np.zeros((2, 2), np.float64)]
    with pytest.raises(FileNotFoundError, match=r"^image 2 \(.*missing.png\): "):
        load_images(items)
    with pytest.raises(ValueError, match=r"^image 3 \(.*x.jpg\): .*x.jpg: not a readable image"):
        load_images([good, noise_rgb(5, 6), good, bad])
    result = load_images(items, on_error="skip")
    assert result.indices == [0, 1]
    assert [a.shape for a in result] == [(37, 53, 3), (5, 6, 3)]
    assert [(s.index, s.source.endswith(n)) for s, n in zip(result.skipped, ["missing.png", "x.jpg"])] == [
        (2, True),
        (3, True),
    ]
    assert result.skipped[2].index == 4 and "uint8" in result.skipped[2].reason
    with pytest.raises(ValueError, match="on_error"):
        load_images(items, on_error="ignore")


def test_decode_each_on_threads_equals_one_thread_in_order(tmp_path):
    paths = []
    for i in range(12):
        p = tmp_path / f"{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(noise_rgb(30 + i, 40 + 2 * i, seed=i)).save(p)
        paths.append(str(p) if i % 3 else p)  # str and PathLike
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    pil = Image.fromarray(noise_rgb(9, 7))
    items = paths[:5] + [None, bad, pil, pil, noise_rgb(4, 4)] + paths[5:] + [tmp_path / "missing.png"]
    one = decode_each(items, num_threads=1)
    many = decode_each(items, num_threads=4)
    assert len(one) == len(many) == len(items)
    for x, a, b in zip(items, one, many):
        if x is None:
            assert a is None and b is None
        elif isinstance(a, Exception):
            assert type(a) is type(b) and str(a) == str(b)
        else:
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, load_image(x))
    assert isinstance(many[6], ValueError) and "bad.jpg" in str(many[6])
    assert isinstance(many[-1], FileNotFoundError)
    np.testing.assert_array_equal(many[7], many[8])  # one PIL object twice
    with pytest.raises(ValueError, match="num_threads"):
        decode_each(items, num_threads=-1)


def test_load_images_names_the_first_bad_file_when_decoding_on_threads(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(noise_rgb()).save(good)
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    items = [good] * 6 + [bad] + [good] * 3 + [tmp_path / "missing.png"]
    with pytest.raises(ValueError, match=r"^image 6 \(.*x.jpg\): "):
        load_images(items, num_threads=3)
    result = load_images(items, on_error="skip", num_threads=3)
    assert result.indices == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert [s.index for s in result.skipped] == [6, 10]
    with pytest.raises(TypeError, match=r"^image 1 \(NoneType\): unsupported image type"):
        load_images([good, None])


def test_decoding_on_threads_leaves_the_warning_filters_alone(tmp_path):
    """load_image silences Pillow's decompression-bomb warning with catch_warnings, which swaps the
    process-wide filter list; on several threads at once that must not leave a filter behind."""
    import warnings

    paths = []
    for i in range(24):
        p = tmp_path / f"{i}.png"
        Image.fromarray(noise_rgb(20, 20, seed=i)).save(p)
        paths.append(p)
    before = list(warnings.filters)
    for _ in range(5):
        decode_each(paths, num_threads=8)
    assert warnings.filters == before
