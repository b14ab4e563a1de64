"""The C++ safetensors reader and writer against the safetensors package (the reference)."""

import struct

import pytest
import safetensors.torch
import torch

import unime

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2]


def sample(dtype, shape):
    x = torch.randn(shape) * 10
    if dtype == torch.bool:
        return x > 0
    return x.to(dtype)


def _bytes(t: torch.Tensor) -> torch.Tensor:
    """The raw bytes of a tensor (bit-exact comparison, NaN-safe)."""
    return t.reshape(-1).view(torch.uint8)


def test_reads_what_safetensors_writes(tmp_path):
    tensors = {f"t{i}.{str(d)}": sample(d, (3, 5 + i)) for i, d in enumerate(DTYPES)}
    tensors["scalar"] = torch.tensor(2.5)
    tensors["empty"] = torch.zeros(0, 4)
    path = tmp_path / "a.safetensors"
    safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})
    ours = unime.load_safetensors(path)
    assert sorted(ours) == sorted(tensors)
    for name, t in tensors.items():
        assert ours[name].dtype == t.dtype and ours[name].shape == t.shape, name
        assert torch.equal(_bytes(ours[name]), _bytes(t)), name


def test_safetensors_reads_what_we_write(tmp_path):
    tensors = {f"w{i}": sample(d, (2, 3, i + 1)) for i, d in enumerate(DTYPES)}
    tensors["scalar"] = torch.tensor(7, dtype=torch.int64)
    path = tmp_path / "b.safetensors"
    unime.save_safetensors(path, tensors, {"k": "v"})
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert (8 + header_len) % 8 == 0
    back = safetensors.torch.load_file(path)
    for name, t in tensors.items():
        assert torch.equal(_bytes(back[name]), _bytes(t)), name
    with safetensors.safe_open(path, "pt") as f:
        assert f.metadata() == {"k": "v"}


def test_dtype_conversion_only_touches_floats(tmp_path):
    path = tmp_path / "c.safetensors"
    safetensors.torch.save_file({"f": torch.randn(4), "i": torch.arange(4)}, path)
    out = unime.load_safetensors(path, dtype=torch.bfloat16)
    assert out["f"].dtype == torch.bfloat16 and out["i"].dtype == torch.int64


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "empty file"),
        (b"\x01\x00", "8 bytes|too small|smaller"),
        (struct.pack("<Q", 10**12) + b"{}", "too large|exceeds|beyond"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "LFS"),
        (struct.pack("<Q", 2) + b"{}" + b"junk", "trailing|bytes|size"),
        (struct.pack("<Q", 4) + b"[1] ", "object"),
    ],
)
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, blob, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=message) as info:
        unime.load_safetensors(path)
    assert "bad.safetensors" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        unime.load_safetensors(tmp_path / "none.safetensors")
