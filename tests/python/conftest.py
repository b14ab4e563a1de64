"""Shared fixtures: tiny random Hugging Face decoders made with transformers at test time."""

import os
import sys

import pytest
import torch

# tests/reference is importable as `reference`.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tiny_models import TINY_DECODERS, make_tiny_decoder  # noqa: E402


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory):
    """Returns a function name -> checkpoint directory, saving each tiny model once per session."""
    cache = {}

    def get(name: str) -> str:
        if name not in cache:
            path = tmp_path_factory.mktemp(name)
            make_tiny_decoder(name).save_pretrained(path, safe_serialization=True)
            cache[name] = str(path)
        return cache[name]

    return get


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is present on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


__all__ = ["TINY_DECODERS"]
