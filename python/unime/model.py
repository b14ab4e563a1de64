"""unime.Model: a loaded embedding model."""

from __future__ import annotations

import json
import math
import os
import platform
import warnings
from typing import Any, Optional, Sequence

import torch
from tqdm.auto import tqdm

from . import _C
from .engine import DEFAULT_MAX_BATCH_TOKENS, EncodeJob, encode_window, prepare_window, windows
from .fingerprint import model_fingerprint
from .hub import resolve_model_path
from .images import DEFAULT_MAX_PIXELS, usable_cores
from .inputs import Instruction, SkippedInput, normalize_inputs, split_dict_inputs
from .tokenizer import Tokenizer


def _dtype_name(dtype: torch.dtype | str | None) -> str | None:
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    if isinstance(dtype, str):
        return dtype
    raise TypeError(f"dtype must be a torch.dtype, a string or 'auto', got {type(dtype).__name__}")


def _slow_cpu_dtype_warning(dtype: torch.dtype, device: str) -> str | None:
    """bf16 / fp16 weights on an x86 CPU without AVX-512: torch has no vector kernel for their matrix
    multiplies there (oneDNN's need AVX-512), so they run far slower than float32."""
    if dtype not in (torch.bfloat16, torch.float16) or torch.device(device).type != "cpu":
        return None
    if platform.machine().lower() not in ("x86_64", "amd64") or torch.cpu._is_avx512_supported():
        return None  # (Arm CPUs have their own bf16 paths, not measured here)
    name = str(dtype).removeprefix("torch.")
    return (f"{name} on this CPU, which has no AVX-512: torch runs {name} matrix multiplies without vector kernels "
            f"here, far slower than float32 (a 1024 x 1024 matmul took 136x the float32 time on an AVX2 AMD EPYC); "
            f"load with dtype=torch.float32 for speed")


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
        # The processor (tokenizer.json + image processor settings) that ships with the checkpoint.
        self.processor: Optional[_C.Processor] = core.processor
        self.tokenizer: Tokenizer | None = Tokenizer(self.processor.tokenizer) if self.processor else None

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike,
        *,
        dtype: torch.dtype | str | None = torch.float32,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        modality: Optional[str] = None,
        recipe: Optional[str] = None,
    ) -> "Model":
        """Loads a Hugging Face checkpoint.

        Args:
            path_or_id: a local checkpoint directory (config.json + model.safetensors or a sharded
                model.safetensors.index.json), or a hub id fetched with huggingface_hub.
            dtype: compute dtype of the weights; "auto" (or None) takes config.json's torch_dtype.
            device: "cpu", "cuda", "cuda:1", ...
            revision: hub revision, for hub ids.
            modality: None (everything) or "text": a multimodal checkpoint without its vision tower and
                projector, which are never read from disk nor kept in memory (Qwen2-VL-2B's vision
                tower is 0.67B of its 2.2B parameters); inputs with images are then refused.
            recipe: how the checkpoint's release embeds, where it differs from its family's processor
                and forward: "default"; "gme" (GME's chat prompt with the instruction as the system
                turn and a trailing <|endoftext|>, its image pre-resize, 256-1280 image tokens, 1800
                tokens, 1-D positions); "unime_v2" (texts without a prompt, images resized to 1344 x
                1344 and prompted "<|image_pad|> Find an image caption ...", 4096 tokens). None: "gme"
                for a Qwen2-VL folder holding GME's gme_inference.py, else "default" (docs/models.md).

        Tensors in the checkpoint that the model does not use are reported with a warning
        (known unneeded ones such as lm_head.weight are listed in ``ignored_tensors`` silently).
        """
        if modality not in (None, "text"):
            raise ValueError(f"modality must be None or 'text', got {modality!r} (image inputs need the language "
                             "model too: its last token is the embedding)")
        path = resolve_model_path(path_or_id, revision)
        core = _C.EmbeddingModel.load(path, _dtype_name(dtype), str(torch.device(device)), text_only=modality == "text",
                                      recipe=recipe or "")
        if core.unexpected_tensors:
            names = core.unexpected_tensors
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            warnings.warn(f"{path}: {len(names)} checkpoint tensor(s) not used by the model: {shown}", stacklevel=2)
        slow = _slow_cpu_dtype_warning(_SCALAR_TYPES.get(core.dtype, torch.float32), core.device)
        if slow:
            warnings.warn(slow, stacklevel=2)
        return cls(core, path)

    def encode_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        images: list[tuple[torch.Tensor, int, int]] | None = None,
        normalize: bool = True,
        packed: bool = True,
        position_ids: torch.Tensor | None = None,
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
            position_ids: (B, L) rotary positions; default 0..L-1 per row (padded) or counted from
                each row's first real token (packed).

        Returns:
            (B, hidden_size) tensor in the model dtype on the model device. It keeps the autograd
            graph when gradients are enabled.
        """
        input_ids = torch.as_tensor(input_ids)
        if input_ids.dim() == 1:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}; use ids[None]")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self._core.encode(input_ids.long(), torch.as_tensor(attention_mask), list(images or []), normalize,
                                 packed, position_ids)

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

    def process(
        self,
        texts: Sequence[Optional[str]],
        images: Sequence[Any],
        instructions: Optional[Sequence[Optional[str]]] = None,
        **options,
    ) -> _C.Batch:
        """The batch the model receives for these inputs (C++ processor of the model's family).

        texts, images, instructions: one entry per input, None where absent; images are decoded
        uint8 (H, W, 3) arrays (unime.load_image). Options as :meth:`encode` (prompt,
        text_template, image_template, max_length, truncate, padding_side, num_threads,
        skip_errors). Returns a Batch: input_ids, attention_mask, images [(pixel_values, h, w)],
        position_ids, rows (the input index of each row), errors, prompts.
        """
        instructions = list(instructions) if instructions is not None else [None] * len(texts)
        return self._core.process(list(texts), list(images), instructions, **options)

    def encode_batch(self, batch: _C.Batch, *, normalize: bool = True, packed: bool = True) -> torch.Tensor:
        """Embeds a Batch from :meth:`process`: (rows, hidden_size) in the model dtype. packed (default):
        computed on the real tokens only; False: on the padded batch as transformers computes it."""
        return self._core.encode_batch(batch, normalize, packed)

    def encode(
        self,
        texts: Any = None,
        images: Any = None,
        *,
        instruction: Instruction = None,
        batch_size: int = 32,
        max_batch_tokens: Optional[int] = DEFAULT_MAX_BATCH_TOKENS,
        prefetch: bool = True,
        show_progress: Optional[bool] = None,
        output: str = "torch",
        normalize: bool = True,
        on_error: str = "raise",
        max_pixels: Optional[int] = None,
        max_length: Optional[int] = None,
        truncate: bool = False,
        prompt: str = "embed",
        text_template: Optional[str] = None,
        image_template: Optional[str] = None,
        num_threads: int = 0,
        prompts: Optional[Sequence[Optional[str]]] = None,
        show_progress_bar: Optional[bool] = None,
        convert_to_numpy: Optional[bool] = None,
        convert_to_tensor: Optional[bool] = None,
        normalize_embeddings: Optional[bool] = None,
    ):
        """Embeds texts, images, or (text, image) pairs.

        Args:
            texts: a str or a list of str (None entries allowed when images are given); or, as in
                sentence-transformers, {"text": ..., "image": ...} per input (one dict or a list).
            images: one image or a list: paths, PIL images, uint8 numpy arrays or tensors (None entries
                allowed when texts are given). texts[i] and images[i] form one input.
            instruction: None (UniME's zero-shot prompts), one str for every input, or one per input;
                inputs with an instruction, and image+text pairs, use the MMEB prompt form (under the
                "gme" recipe every input takes GME's chat form, the instruction as its system turn).
            batch_size: inputs decoded and processed together (a window), and the most inputs per
                forward pass; memory stays bounded for any number of inputs.
            max_batch_tokens: real tokens per forward pass (image tokens included): a window's inputs
                are sorted by length and run in passes filled up to it (None: batch_size alone decides).
                An input longer than the budget runs alone.
            prefetch: decode and process the next window on a worker thread while this one is embedded.
            show_progress: a tqdm progress bar (tqdm.auto: a widget in notebooks); default: on when
                there is more than one batch. show_progress_bar is the same (sentence-transformers' name).
            output: "torch" (a float32 tensor on the model device) or "numpy".
            on_error: "raise" (default): the first bad input (an unreadable image, a text longer than
                max_length) raises, naming its index; "skip": such inputs are left out and reported,
                and the call returns (embeddings, skipped) where embeddings has one row per input
                with NaN rows for the skipped ones.
            max_pixels: cap on decoded image size (checked from the header before decoding); default
                unime.images.DEFAULT_MAX_PIXELS.
            max_length: tokens per input, image tokens included; default the model's maximum
                (max_position_embeddings), or its recipe's (1800 for "gme", 4096 for "unime_v2").
                Longer inputs are refused, or cut at the end when truncate.
            prompt: "embed" (the family's embedding prompts) or "distill" (UniME's stage-1 text prompt).
            text_template, image_template: your own prompt with "{text}" / "{image}" slots instead.
            num_threads: threads for decoding image files, tokenization and image preprocessing (0: one
                per core this process may use; under torchrun, its share of the machine's).
            convert_to_numpy / convert_to_tensor / normalize_embeddings: sentence-transformers' names
                for output="numpy" / output="torch" / normalize.
            prompts: complete prompts instead of texts (one per input, None entries allowed), in which
                "<|image_1|>" marks the input's image as in MMEB's rows; the tag becomes the model
                family's placeholder (VLM2Vec's convention).

        Returns:
            (N, hidden_size) embeddings (or (hidden_size,) for a single non-list input), L2-normalised
            unless normalize=False; with on_error="skip", a tuple (embeddings, list of SkippedInput).
        """
        show_progress = _alias("show_progress", show_progress, "show_progress_bar", show_progress_bar, None)
        normalize = _alias("normalize", normalize, "normalize_embeddings", normalize_embeddings, True)
        if convert_to_numpy is not None or convert_to_tensor is not None:
            # sentence-transformers' precedence: convert_to_tensor over convert_to_numpy.
            wanted = "torch" if convert_to_tensor or not convert_to_numpy else "numpy"
            if output != "torch" and output != wanted:
                raise ValueError(f"output={output!r} conflicts with convert_to_numpy={convert_to_numpy}, "
                                 f"convert_to_tensor={convert_to_tensor}")
            output = wanted
        texts, images = split_dict_inputs(texts, images)
        if output not in ("torch", "numpy"):
            raise ValueError(f"output must be 'torch' or 'numpy', got {output!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {num_threads}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1 or None, got {max_batch_tokens}")
        if self.processor is None:
            raise ValueError(f"{self.path}: no tokenizer.json next to the checkpoint; encode needs one "
                             "(or call Model.encode_ids with token ids)")
        text_list, image_list, instructions, single = normalize_inputs(texts, images, instruction, prompts)
        if self._core.text_only:
            first = next((i for i, im in enumerate(image_list) if im is not None), None)
            if first is not None:
                raise ValueError(f"input {first} has an image, but this model was loaded with modality='text' "
                                 "(no vision tower); load it without modality to embed images")
        n = len(text_list)
        prompt_list = list(prompts) if prompts is not None else None
        limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        options = dict(prompt=prompt, text_template=text_template, image_template=image_template,
                       max_length=max_length or 0, truncate=truncate, num_threads=num_threads or usable_cores(),
                       skip_errors=on_error == "skip")
        out = torch.full((n, self.hidden_size), math.nan, dtype=torch.float32, device=self.device)
        job = EncodeJob(text_list, image_list, instructions, prompt_list, limit, on_error == "raise", options)
        skipped: list[SkippedInput] = []
        progress = tqdm(total=n, unit="input", desc="unime.encode",
                        disable=not (show_progress if show_progress is not None else n > batch_size))
        for window in windows(lambda index: prepare_window(self._core, job, index), n, batch_size, prefetch):
            skipped.extend(window.skipped)
            encode_window(self._core, window, out, max_rows=batch_size, max_tokens=max_batch_tokens,
                          normalize=normalize)
            progress.update(window.count)
        progress.close()
        skipped.sort(key=lambda s: s.index)
        result: Any = out[0] if single else out
        if output == "numpy":
            result = result.cpu().numpy()
        return (result, skipped) if on_error == "skip" else result

    def encode_query(self, inputs: Any = None, images: Any = None, *, instruction: Instruction = None, **options):
        """Embeds queries (sentence-transformers' name): :meth:`encode` with the task's instruction, as
        MMEB and UniME embed queries ("Find an image caption describing the given image." ...)."""
        return self.encode(inputs, images, instruction=instruction, **options)

    def encode_document(self, inputs: Any = None, images: Any = None, *, instruction: Instruction = None,
                        **options):
        """Embeds candidates (sentence-transformers' name): :meth:`encode`, without an instruction unless
        one is given (MMEB gives candidates their own, e.g. "Represent the given image.")."""
        return self.encode(inputs, images, instruction=instruction, **options)

    # ---- LoRA adapters (PEFT's layout and names) -------------------------------------------------

    def add_lora(
        self,
        target_modules: Sequence[str] | str,
        *,
        r: int = 8,
        alpha: float = 8.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
        components: Sequence[str] = (),
        init: str = "kaiming",
        dtype: torch.dtype | str | None = None,
        seed: int = 0,
    ) -> list[str]:
        """Adds LoRA adapters to the Linear layers PEFT would adapt with these settings.

        target_modules: names ("q_proj", "v_proj") matched against the end of each layer's Hugging
        Face module path, or one regex string that must match the whole path (PEFT's rule).
        components: restrict to "language_model", "vision_tower", "projector" (default: all).
        Returns the adapted module paths. The base weights stay frozen; A is drawn with `seed`.
        """
        if isinstance(target_modules, str):
            modules, regex = [], target_modules
        else:
            modules, regex = list(target_modules), ""
        return self._core.add_lora(modules, regex, list(components), r, alpha, dropout, use_rslora, init,
                                   _dtype_name(dtype), seed)

    def hf_name(self, module_path: str) -> str | None:
        """The Hugging Face checkpoint name of a parameter path ("decoder.layers.0.self_attn.q_proj.lora_A.weight"
        -> "model.layers.0.self_attn.q_proj.lora_A.weight"); None when no rule maps it."""
        return self._core.hf_name(module_path)

    def hf_module_path(self, module_path: str) -> str:
        """The Hugging Face module path of a module ("decoder.layers.0.self_attn.q_proj" ->
        "model.layers.0.self_attn.q_proj"), as PEFT's target_modules see it."""
        return self._core.hf_module_path(module_path)

    def lora_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """(module path, tensor) of every adapter weight (lora_A / lora_B), sharing memory."""
        return self._core.lora_parameters()

    def merge_lora(self) -> None:
        """Adds each adapter into its base weight (W += scaling * B A); forward then skips them."""
        self._core.merge_lora()

    def unmerge_lora(self) -> None:
        self._core.unmerge_lora()

    def load_adapter(self, path: str | os.PathLike) -> list[str]:
        """Adds the LoRA adapters of a PEFT adapter directory (adapter_config.json +
        adapter_model.safetensors, e.g. unime.Trainer.save_adapter's or PEFT's save_pretrained) and
        loads their weights; returns the adapted module paths."""
        return _C.load_peft_adapter(self._core, os.fspath(path))

    def save_merged(self, path: str | os.PathLike) -> None:
        """This model with its adapters merged into the weights, as a Hugging Face checkpoint
        directory (the base checkpoint's files, with W + scaling * B A in its dtype)."""
        _C.save_merged_checkpoint(self._core, self.path, os.fspath(path))

    def train(self, mode: bool = True) -> "Model":
        """Training mode (LoRA dropout active) or, with mode=False, evaluation mode."""
        self._core.train(mode)
        return self

    def eval(self) -> "Model":
        return self.train(False)

    def gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer's activations in backward instead of storing them (training)."""
        self._core.set_gradient_checkpointing(enabled)

    @property
    def config(self) -> dict:
        return json.loads(self._core.config_json)

    @property
    def model_type(self) -> str:
        return self._core.model_type

    @property
    def recipe(self) -> str:
        """The recipe the model embeds with ("default", "gme", "unime_v2"): see from_pretrained."""
        return self._core.recipe

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

    @property
    def max_length(self) -> int:
        """The longest input in tokens the model takes: the config's, or its recipe's where lower (0: the
        config does not say)."""
        return self._core.max_length

    @property
    def fingerprint(self) -> str:
        """"<model_type>-<16 hex>": identifies the checkpoint and attached adapters that make this model's
        vectors (unime.fingerprint); an index or an evaluation run records it."""
        return model_fingerprint(self)

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """(module path, tensor) pairs sharing memory with the model."""
        return self._core.named_parameters()

    def __repr__(self) -> str:
        return (f"unime.Model({self.model_type}, hidden_size={self.hidden_size}, dtype={self.dtype}, "
                f"device={self.device})")


def _alias(name: str, value: Any, other_name: str, other: Any, default: Any) -> Any:
    """One option under two names (ours and sentence-transformers'); refuses two different values."""
    if other is None:
        return default if value is None else value
    if value is not None and value != default and value != other:
        raise ValueError(f"{name}={value!r} and {other_name}={other!r} disagree; give one of them")
    return other
