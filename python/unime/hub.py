"""Resolving a model argument to a local checkpoint directory."""

from __future__ import annotations

import os
import re

# A Hugging Face hub id: "name" or "org/name" of letters, digits, '-', '_', '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# gme_inference.py: its presence marks a GME checkpoint (the "gme" recipe, model/recipe.h).
_FILES_NEEDED = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "gme_inference.py"]


def resolve_model_path(path_or_id: str | os.PathLike, revision: str | None = None) -> str:
    """Returns a local directory for `path_or_id`.

    A local directory is returned as is. Anything else that looks like a hub id is downloaded
    (config, tokenizer and safetensors files only) with huggingface_hub when it is installed and
    the hub is reachable; otherwise the error says which of those failed.
    """
    path = os.fspath(path_or_id)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise ValueError(f"{path}: expected a model directory (config.json + safetensors), got a file")
    if not _HUB_ID.match(path) or path.startswith((".", "/")):
        raise FileNotFoundError(f"{path}: no such model directory")
    try:
        import huggingface_hub
    except ImportError as e:
        raise FileNotFoundError(
            f"{path!r} is not a local directory, and huggingface_hub is not installed to fetch it from the "
            f"Hugging Face hub (pip install huggingface_hub), or download it and pass the directory."
        ) from e
    try:
        return huggingface_hub.snapshot_download(repo_id=path, revision=revision, allow_patterns=_FILES_NEEDED)
    except Exception as e:  # network, auth, missing repo: all end the same way for the caller
        raise FileNotFoundError(
            f"{path!r} is not a local directory and could not be fetched from the Hugging Face hub "
            f"({type(e).__name__}: {e}). Download it where the hub is reachable and pass the directory."
        ) from e
