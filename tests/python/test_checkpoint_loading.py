"""Loading Hugging Face checkpoint directories: single file, sharded, broken ones."""

import json
import os
import shutil
import platform
import warnings

import pytest
import safetensors.torch
import torch
from tiny_models import make_tiny_decoder

import unime


def _copy(src: str, dst) -> str:
    shutil.copytree(src, dst)
    return str(dst)


def test_sharded_checkpoint_loads_and_matches_single_file(tiny_decoder_dir, tmp_path):
    hf = make_tiny_decoder("mistral")
    hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "expected several shards"
    sharded = unime.Model.from_pretrained(tmp_path)
    single = unime.Model.from_pretrained(tiny_decoder_dir("mistral"))
    ids = torch.randint(0, 97, (3, 8))
    torch.testing.assert_close(sharded.encode_ids(ids), single.encode_ids(ids), atol=0, rtol=0)


def test_missing_tensors_are_listed(tiny_decoder_dir, tmp_path):
    d = _copy(tiny_decoder_dir("llama"), tmp_path / "m")
    path = os.path.join(d, "model.safetensors")
    tensors = safetensors.torch.load_file(path)
    del tensors["model.layers.1.mlp.up_proj.weight"], tensors["model.norm.weight"]
    safetensors.torch.save_file(tensors, path)
    with pytest.raises(KeyError) as info:
        unime.Model.from_pretrained(d)
    assert "model.layers.1.mlp.up_proj.weight" in str(info.value) and "model.norm.weight" in str(info.value)
    assert "2 tensor(s)" in str(info.value)


def test_unexpected_tensors_are_reported(tiny_decoder_dir, tmp_path):
    d = _copy(tiny_decoder_dir("llama"), tmp_path / "m")
    path = os.path.join(d, "model.safetensors")
    tensors = safetensors.torch.load_file(path)
    tensors["model.mystery.weight"] = torch.zeros(3)
    safetensors.torch.save_file(tensors, path)
    with pytest.warns(UserWarning, match="model.mystery.weight"):
        model = unime.Model.from_pretrained(d)
    assert model.unexpected_tensors == ["model.mystery.weight"]


def test_known_unneeded_tensors_are_ignored_quietly(tiny_decoder_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = unime.Model.from_pretrained(tiny_decoder_dir("llama"))
    assert model.ignored_tensors == ["lm_head.weight"]
    assert model.unexpected_tensors == []


def test_shape_mismatch_names_the_tensor(tiny_decoder_dir, tmp_path):
    d = _copy(tiny_decoder_dir("llama"), tmp_path / "m")
    path = os.path.join(d, "model.safetensors")
    tensors = safetensors.torch.load_file(path)
    tensors["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(3, 3)
    safetensors.torch.save_file(tensors, path)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.q_proj\.weight.*shape"):
        unime.Model.from_pretrained(d)


def test_missing_directory_and_bad_arguments(tiny_decoder_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        unime.Model.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        unime.Model.from_pretrained("./relative/nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        unime.Model.from_pretrained(empty)
    with pytest.raises(ValueError, match="dtype 'int8'"):
        unime.Model.from_pretrained(tiny_decoder_dir("llama"), dtype="int8")
    model = unime.Model.from_pretrained(tiny_decoder_dir("llama"))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.encode_ids(torch.tensor([[1, 2, 89]]))
    with pytest.raises(ValueError, match="row 1 has no real token"):
        model.encode_ids(torch.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="batch, length"):
        model.encode_ids(torch.tensor([1, 2, 3]))


def test_config_errors_name_the_file(tiny_decoder_dir, tmp_path):
    d = _copy(tiny_decoder_dir("llama"), tmp_path / "m")
    cfg_path = os.path.join(d, "config.json")
    cfg = json.loads(open(cfg_path).read())
    cfg["model_type"] = "bert"
    open(cfg_path, "w").write(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json: model_type 'bert' is not supported"):
        unime.Model.from_pretrained(d)
    open(cfg_path, "w").write("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        unime.Model.from_pretrained(d)


def test_hub_id_without_network_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not be fetched|not installed"):
        unime.Model.from_pretrained("DeepGlint-AI/UniME-LLaVA-1.6-7B")


def test_auto_dtype_uses_config_torch_dtype(tiny_decoder_dir, tmp_path):
    hf = make_tiny_decoder("llama").to(torch.bfloat16)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    assert unime.Model.from_pretrained(tmp_path, dtype="auto").dtype == torch.bfloat16
    assert unime.Model.from_pretrained(tmp_path).dtype == torch.float32


@pytest.mark.parametrize("avx512", [False, True])
def test_bf16_on_a_cpu_without_avx512_warns_that_it_is_slow(tiny_decoder_dir, monkeypatch, avx512):
    """torch's bf16 / fp16 matrix multiplies have no vector kernel on CPUs without AVX-512 (136x slower
    than fp32 on an AVX2 AMD EPYC): loading them there warns; fp32, and CPUs with AVX-512, stay quiet."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: avx512)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unime.Model.from_pretrained(tiny_decoder_dir("llama"), dtype=torch.bfloat16)
        unime.Model.from_pretrained(tiny_decoder_dir("llama"), dtype="float16")
        unime.Model.from_pretrained(tiny_decoder_dir("llama"))
    slow = [str(w.message) for w in caught if "no AVX-512" in str(w.message)]
    if avx512:
        assert slow == []
    else:
        assert len(slow) == 2
        assert slow[0].startswith("bfloat16 on this CPU") and "dtype=torch.float32" in slow[0]
        assert slow[1].startswith("float16 on this CPU")
