"""Image loading and LLaVA-NeXT preprocessing.

Decoding is Pillow's, as in every reference pipeline (transformers 4.48, UniME, VLM2Vec); the
pixel work after it (Pillow-exact resizing, anyres tiling, normalisation) runs in the C++ core
(``unime._C``) without the GIL and gives the same float32 values as transformers 4.48.3's
``LlavaNextImageProcessor``.

Colour: every input becomes an ``(H, W, 3)`` uint8 RGB numpy array the way transformers does it,
``PIL.Image.convert("RGB")``: alpha is dropped (not composited), palettes are expanded, grey is
replicated, CMYK/YCbCr/16-bit modes use Pillow's conversions.

EXIF orientation is *not* applied by default, because transformers does not apply it (a phone photo
stored sideways is embedded sideways there too). ``apply_exif_orientation=True`` rotates first.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from . import _C

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "LoadedImages",
    "SkippedImage",
    "decode_each",
    "load_image",
    "load_images",
    "llava_next_preprocess",
    "llava_next_layout",
    "resize_rgb",
    "LlavaNextImageConfig",
]

# 64 megapixels: far above any image these models use (they see at most 1008x1008 after resizing),
# and well under Pillow's decompression-bomb limits (89 MP warning, 179 MP error).
DEFAULT_MAX_PIXELS = 64_000_000

LlavaNextImageConfig = _C.LlavaNextImageConfig

_OPEN_LOCK = threading.Lock()


def _describe(x: Any) -> str:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    if isinstance(x, Image.Image):
        return f"PIL image mode={x.mode} size={x.size[0]}x{x.size[1]}"
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} shape={tuple(x.shape)} dtype={x.dtype}"
    return type(x).__name__


def _check_pixels(width: int, height: int, max_pixels: Optional[int], what: str) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"{what}: image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"{what}: image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (max_pixels)"
        )


def _from_pil(im: Image.Image, what: str, max_pixels: Optional[int], apply_exif_orientation: bool):
    # The size comes from the header: check it before any pixel is decoded.
    _check_pixels(im.size[0], im.size[1], max_pixels, what)
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ValueError(f"{what}: corrupt or truncated image data ({e})") from e
    if apply_exif_orientation:
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise ValueError(f"{what}: cannot convert mode {im.mode} to RGB ({e})") from e
    return np.asarray(im, dtype=np.uint8).copy()


def _from_array(a: np.ndarray, what: str, max_pixels: Optional[int]) -> np.ndarray:
    if a.dtype != np.uint8:
        raise ValueError(f"{what}: arrays must have dtype uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"{what}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}")
    _check_pixels(a.shape[1], a.shape[0], max_pixels, what)
    if a.shape[2] == 1:  # grey: replicated, as PIL's L -> RGB
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:  # RGBA: alpha dropped, as PIL's RGBA -> RGB
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def load_image(
    image: Any,
    *,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    apply_exif_orientation: bool = False,
) -> np.ndarray:
    """Returns ``image`` as a C-contiguous ``(H, W, 3)`` uint8 RGB numpy array.

    Accepts:
      * a file path (``str`` or ``os.PathLike``): decoded with Pillow (first frame of animations);
      * a ``PIL.Image.Image`` of any mode: ``convert("RGB")`` as transformers;
      * a numpy uint8 array ``(H, W)`` / ``(H, W, 1)`` (grey), ``(H, W, 3)`` (RGB) or
        ``(H, W, 4)`` (RGBA, alpha dropped);
      * a uint8 ``torch.Tensor`` ``(3, H, W)`` / ``(1, H, W)`` (torchvision's channels-first
        layout) or ``(H, W, 3)`` / ``(H, W)``. A 3-D tensor is channels-first when its first
        dimension is 1 or 3, channels-last otherwise, so ``(3, W, 3)`` counts as channels-first.

    Raises FileNotFoundError for a missing path and ValueError (naming the file or input) for an
    image over ``max_pixels`` (checked from the header before decoding; ``None`` disables it),
    an unrecognised, corrupt or truncated file, or a non-uint8 / badly shaped array.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such image file")
        if os.path.isdir(path):
            raise ValueError(f"{path}: is a directory, not an image file")
        try:
            # Our own max_pixels check replaces Pillow's 89 MP warning; its 179 MP error stays.
            # catch_warnings swaps the process-wide filter list: one thread at a time (opening reads
            # the header only; decoding happens later, outside the lock).
            with _OPEN_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)
        except Image.DecompressionBombError as e:
            raise ValueError(f"{path}: {e}") from e
        except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"{path}: not a readable image file ({e})") from e
        with im:
            return _from_pil(im, path, max_pixels, apply_exif_orientation)
    if isinstance(image, Image.Image):
        return _from_pil(image, _describe(image), max_pixels, apply_exif_orientation)
    if isinstance(image, torch.Tensor):
        what = _describe(image)
        if image.dtype != torch.uint8:
            raise ValueError(f"{what}: tensors must have dtype torch.uint8, got {image.dtype}")
        t = image.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        return _from_array(t.contiguous().numpy(), what, max_pixels)
    if isinstance(image, np.ndarray):
        return _from_array(image, _describe(image), max_pixels)
    raise _unsupported_type(image)


def _unsupported_type(image: Any) -> TypeError:
    return TypeError(f"unsupported image type {type(image).__name__}: expected a path, PIL.Image, numpy array "
                     "or torch tensor")


def usable_cores(env=os.environ) -> int:
    """The threads one process should use by default: the cores it may run on (its affinity mask:
    taskset, cgroups' cpusets), divided among the LOCAL_WORLD_SIZE processes torchrun starts on the
    machine unless they are pinned already (a mask narrower than the machine)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    local = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
    if local > 1 and cores >= (os.cpu_count() or cores):
        cores = max(1, cores // local)
    return cores


def decode_each(
    images: Sequence[Any],
    *,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    apply_exif_orientation: bool = False,
    num_threads: int = 0,
) -> List[Union[np.ndarray, None, Exception]]:
    """load_image of each input, in order: None stays None, and a failure (ValueError, TypeError,
    OSError) takes the failing input's place instead of being raised, so the caller decides what to
    raise or skip. Files are decoded on up to ``num_threads`` threads (0: one per core): Pillow
    releases the GIL while it decodes, and a 12-megapixel JPEG takes about 170 ms of one core. PIL
    images, arrays and tensors are converted on the calling thread (one PIL object may appear twice,
    and Pillow's lazy loading is not thread-safe)."""
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0, got {num_threads}")
    images = list(images)

    def one(x: Any) -> Union[np.ndarray, None, Exception]:
        if x is None:
            return None
        try:
            return load_image(x, max_pixels=max_pixels, apply_exif_orientation=apply_exif_orientation)
        except (ValueError, TypeError, OSError) as e:
            return e

    files = [i for i, x in enumerate(images) if isinstance(x, (str, os.PathLike))]
    # 0: usable_cores(), this process's share of the machine
    threads = min(len(files), num_threads or usable_cores())
    out: List[Union[np.ndarray, None, Exception]] = [None] * len(images)
    if threads > 1:
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unime-decode")
        try:
            for i, result in zip(files, pool.map(one, [images[i] for i in files])):
                out[i] = result
        finally:  # on Ctrl-C the files not started yet are dropped, not decoded first
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for i in files:
            out[i] = one(images[i])
    for i, x in enumerate(images):
        if not isinstance(x, (str, os.PathLike)):
            out[i] = one(x)
    return out


@dataclass
class SkippedImage:
    index: int  # position in the list given to load_images
    source: str  # the path, or a description of the object
    reason: str  # the error message


@dataclass
class LoadedImages:
    """What load_images returns: the decoded images, their positions in the input, and the inputs
    that were skipped (empty unless on_error="skip"). Iterating or indexing gives the images."""

    images: List[np.ndarray] = field(default_factory=list)
    indices: List[int] = field(default_factory=list)
    skipped: List[SkippedImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]


def load_images(
    images: Sequence[Any],
    *,
    on_error: str = "raise",
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    apply_exif_orientation: bool = False,
    num_threads: int = 0,
) -> LoadedImages:
    """load_image on each input (files on ``num_threads`` threads, 0: one per core; see decode_each).
    A failure raises the same exception type with the message prefixed by ``image I (SOURCE): ``
    (the first failing input's); with ``on_error="skip"`` it is recorded in ``.skipped`` instead and
    the good images are returned in order (``.indices`` maps them back to the input)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    images = list(images)
    out = LoadedImages()
    decoded: List[Union[np.ndarray, None, Exception]] = []
    chunk = 64  # decoded ahead at most: in raise mode the first failure ends the work soon
    for start in range(0, len(images), chunk):
        part = decode_each(images[start:start + chunk], max_pixels=max_pixels,
                           apply_exif_orientation=apply_exif_orientation, num_threads=num_threads)
        decoded += part
        if on_error == "raise" and any(r is None or isinstance(r, Exception) for r in part):
            break
    for i, (x, arr) in enumerate(zip(images, decoded)):
        if arr is None:  # decode_each passes None through; here it is no image
            arr = _unsupported_type(x)
        if isinstance(arr, Exception):
            message = f"image {i} ({_describe(x)}): {arr}"
            if on_error == "raise":
                raise type(arr)(message) from arr
            out.skipped.append(SkippedImage(i, _describe(x), str(arr)))
            continue
        out.images.append(arr)
        out.indices.append(i)
    return out


def resize_rgb(image: Any, height: int, width: int, filter: str = "bicubic") -> np.ndarray:
    """Resize exactly as ``PIL.Image.resize((width, height), BICUBIC | BILINEAR)`` on RGB."""
    return _C.resize_rgb(load_image(image, max_pixels=None), height, width, filter)


def llava_next_layout(height: int, width: int, config: Any = None) -> dict:
    """Tile grid, unpadded feature rows/cols and image token count for an image of this size.
    ``config``: None (llava-hf defaults), a dict, a path, or a LlavaNextImageConfig."""
    return _C.llava_next_layout(height, width, config)


def llava_next_preprocess(
    images: Any,
    config: Any = None,
    *,
    num_threads: int = 0,
    pad: bool = True,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
) -> dict:
    """LlavaNextImageProcessor (transformers 4.48.3) on one image or a list of images.

    Returns ``{"pixel_values", "image_sizes", "layouts"}``: ``pixel_values`` is a float32 tensor
    ``(B, P_max, 3, crop, crop)`` with missing patches zero-filled when ``pad`` (transformers'
    do_pad), else a list of ``(P_i, 3, crop, crop)`` tensors; ``image_sizes`` is an int64
    ``(B, 2)`` tensor of (height, width); ``layouts`` holds each image's tile grid, unpadding and
    ``num_image_tokens``. Images are processed on ``num_threads`` threads (0 = one per core).
    """
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    arrays = load_images(items, max_pixels=max_pixels).images
    if not isinstance(config, _C.LlavaNextImageConfig):
        config = _C.LlavaNextImageConfig(config)  # parse once for the whole batch
    results: List[Tuple[torch.Tensor, dict]] = _C.llava_next_preprocess_batch(arrays, config, num_threads)
    pixels = [p for p, _ in results]
    layouts = [layout for _, layout in results]
    if pad:
        most = max(p.shape[0] for p in pixels)
        batch = torch.zeros((len(pixels), most) + tuple(pixels[0].shape[1:]), dtype=torch.float32)
        for i, p in enumerate(pixels):
            batch[i, : p.shape[0]] = p
        pixel_values: Any = batch
    else:
        pixel_values = pixels
    image_sizes = torch.tensor([[a.shape[0], a.shape[1]] for a in arrays], dtype=torch.int64)
    return {"pixel_values": pixel_values, "image_sizes": image_sizes, "layouts": layouts}
