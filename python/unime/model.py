"""unime.Model: a loaded embedding model."""

from __future__ import annotations

import json
import os
import warnings

import torch

from . import _C
from .hub import resolve_model_path
from .tokenizer import Tokenizer


def _dtype_name(dtype: torch.dtype | str | None) -> str | None:
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    if isinstance(dtype, str):
        return dtype
    raise TypeError(f"dtype must be a torch.dtype, a string or 'auto', got {type(dtype).__name__}")


# c10::toString(ScalarType) -> torch.dtype
_SCALAR_TYPES = {"Float": torch.float32, "BFloat16": torch.bfloat16, "Half": torch.float16, "Double": torch.float64}


class Model:
    """An embedding model on the C++ core.

    Build one with :meth:`from_pretrained`. Embeddings are the final hidden state of each input's
    last real token, L2-normalised (UniME, VLM2Vec, GME and UniME-V2 all pool this way).
    """

    def __init__(self, core: _C.EmbeddingModel, path: str):
        self._core = core
        self.path = path
        tokenizer_path = os.path.join(path, "tokenizer.json")
        # The tokenizer and image configuration that ship with the checkpoint, when they do.
        self.tokenizer: Tokenizer | None = Tokenizer.from_file(tokenizer_path) if os.path.exists(tokenizer_path) else None
        self.image_config = None
        if core.image_token_id is not None:
            pre = os.path.join(path, "preprocessor_config.json")
            self.image_config = _C.LlavaNextImageConfig(pre if os.path.exists(pre) else os.path.join(path, "config.json"))

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike,
        *,
        dtype: torch.dtype | str | None = torch.float32,
        device: str | torch.device = "cpu",
        revision: str | None = None,
    ) -> "Model":
        """Loads a Hugging Face checkpoint.

        Args:
            path_or_id: a local checkpoint directory (config.json + model.safetensors or a sharded
                model.safetensors.index.json), or a hub id fetched with huggingface_hub.
            dtype: compute dtype of the weights; "auto" (or None) takes config.json's torch_dtype.
            device: "cpu", "cuda", "cuda:1", ...
            revision: hub revision, for hub ids.

        Tensors in the checkpoint that the model does not use are reported with a warning
        (known unneeded ones such as lm_head.weight are listed in ``ignored_tensors`` silently).
        """
        path = resolve_model_path(path_or_id, revision)
        core = _C.EmbeddingModel.load(path, _dtype_name(dtype), str(torch.device(device)))
        if core.unexpected_tensors:
            names = core.unexpected_tensors
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            warnings.warn(f"{path}: {len(names)} checkpoint tensor(s) not used by the model: {shown}", stacklevel=2)
        return cls(core, path)

    def encode_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        images: list[tuple[torch.Tensor, int, int]] | None = None,
        normalize: bool = True,
        packed: bool = True,
    ) -> torch.Tensor:
        """Embeds token ids (and the images whose placeholder tokens they hold).

        Args:
            input_ids: (B, L) integer token ids, left or right padded.
            attention_mask: (B, L), 1 for real tokens, 0 for padding; all ones when omitted.
            images: for multimodal models, ``(pixel_values, height, width)`` per image in the order
                their placeholders appear (row by row), each placeholder already expanded to
                ``image_token_count(height, width)`` copies of ``image_token_id``.
            normalize: L2-normalise the pooled vectors.
            packed: compute on the real tokens only (default; no work on padding, the last layer
                only for the last tokens). False runs the padded batch exactly as transformers
                does; the two agree up to rounding.

        Returns:
            (B, hidden_size) tensor in the model dtype on the model device. It keeps the autograd
            graph when gradients are enabled.
        """
        input_ids = torch.as_tensor(input_ids)
        if input_ids.dim() == 1:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}; use ids[None]")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self._core.encode(input_ids.long(), torch.as_tensor(attention_mask), list(images or []), normalize, packed)

    def last_hidden_state(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        images: list[tuple[torch.Tensor, int, int]] | None = None,
    ) -> torch.Tensor:
        """(B, L, hidden_size): the decoder's output after the final norm (HF's hidden_states[-1])."""
        input_ids = torch.as_tensor(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self._core.last_hidden_state(input_ids.long(), torch.as_tensor(attention_mask), list(images or []))

    @property
    def image_token_id(self) -> int | None:
        """The id of the image placeholder token; None for text-only models."""
        return self._core.image_token_id

    def image_token_count(self, height: int, width: int) -> int:
        """How many placeholder tokens an image of this size takes (its feature count)."""
        return self._core.image_token_count(height, width)

    def encode(self, texts=None, images=None, **kwargs):
        """unime.encode(self, texts, images, ...): see unime.encode for the arguments."""
        from .encode import encode

        return encode(self, texts, images, **kwargs)

    @property
    def config(self) -> dict:
        return json.loads(self._core.config_json)

    @property
    def model_type(self) -> str:
        return self._core.model_type

    @property
    def hidden_size(self) -> int:
        return self._core.hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return _SCALAR_TYPES[self._core.dtype]

    @property
    def device(self) -> torch.device:
        return torch.device(self._core.device)

    @property
    def unexpected_tensors(self) -> list[str]:
        return list(self._core.unexpected_tensors)

    @property
    def ignored_tensors(self) -> list[str]:
        return list(self._core.ignored_tensors)

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """(module path, tensor) pairs sharing memory with the model."""
        return self._core.named_parameters()

    def __repr__(self) -> str:
        return f"unime.Model({self.model_type}, hidden_size={self.hidden_size}, dtype={self.dtype}, device={self.device})"
