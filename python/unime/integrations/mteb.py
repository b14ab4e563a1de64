"""Run mteb's text, image and image+text tasks with a unime.Model (docs/mteb.md).

    import mteb
    import unime
    from unime.integrations.mteb import as_mteb_model

    model = unime.Model.from_pretrained("DeepGlint-AI/UniME-LLaVA-1.6-7B", dtype="float16", device="cuda")
    encoder = as_mteb_model(model, name="DeepGlint-AI/UniME-LLaVA-1.6-7B")
    result = mteb.evaluate(encoder, mteb.get_tasks(tasks=["MSCOCOI2TRetrieval"]), encode_kwargs={"batch_size": 8})

It implements mteb 2's encoder protocol (one ``encode`` over a DataLoader of batches whose "text" and
"image" columns are this task side's modalities; both present: image+text inputs), tested with
mteb ``MTEB_VERSION``. mteb is imported when an encoder is made, never by ``import unime``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import numpy as np

MTEB_VERSION = "2.26.24"
INSTALL_HINT = f"pip install mteb=={MTEB_VERSION}"


def _import_mteb() -> Any:
    try:
        import mteb
    except ImportError as e:
        raise ImportError(f"unime.integrations.mteb needs the mteb package: {INSTALL_HINT}") from e
    if int(mteb.__version__.split(".")[0]) < 2:
        # 1.x calls get_text_embeddings / get_image_embeddings / get_fused_embeddings instead.
        raise ImportError(f"unime.integrations.mteb implements mteb 2's encoder protocol; mteb {mteb.__version__} "
                          f"is installed: {INSTALL_HINT}")
    return mteb


def _prompt_type_name(prompt_type: Any) -> Optional[str]:
    # PromptType is a str enum ("query" / "document"); None for symmetric tasks (STS, classification...).
    return None if prompt_type is None else str(getattr(prompt_type, "value", prompt_type))


def _default_name(path: str) -> str:
    """mteb wants "organization/model": a hub snapshot's repo id, else unime/<directory name>."""
    parts = os.path.normpath(os.fspath(path)).split(os.sep)
    for part in reversed(parts):
        if part.startswith("models--"):  # huggingface_hub's cache layout: models--org--name/snapshots/<hash>
            return part[len("models--"):].replace("--", "/", 1)
    return f"unime/{parts[-1] or 'model'}"


class MtebEncoder:
    """mteb's EncoderProtocol over a unime.Model: what ``mteb.evaluate`` takes.

    Instructions (UniME / MMEB embed queries with the task's instruction and candidates without one):

    * ``instructions``: your own, keyed as mteb's model prompts are: ``"<TaskName>-query"``,
      ``"<TaskName>"``, ``"<TaskType>-query"``, ``"<TaskType>"``, ``"query"`` (first match wins) for
      queries and for symmetric tasks' inputs (prompt type None: classification, clustering, STS);
      documents only take ``"<TaskName>-document"``, ``"<TaskType>-document"`` or ``"document"``.
      A value of None or "" means no instruction.
    * otherwise the task's own prompt (``TaskMetadata.prompt``): a dict gives queries its "query"
      entry and documents its "document" entry; a str applies to queries and symmetric inputs.
    * otherwise none: the model's zero-shot prompts ("Summary above sentence/image in one word:").

    Embeddings come back as float32 numpy arrays, L2-normalised; scores are cosine similarities.
    """

    def __init__(self, model: Any, *, name: Optional[str] = None, revision: Optional[str] = None,
                 instructions: Optional[Mapping[str, Optional[str]]] = None, use_task_prompts: bool = True,
                 batch_size: Optional[int] = None, meta: Optional[Mapping[str, Any]] = None,
                 **encode_options: Any):
        """
        Args:
            model: a unime.Model, or a checkpoint directory / hub id to load (float32 on CPU; load it
                yourself for another dtype or device).
            name: the model name mteb records results under ("org/model"); default: the hub repo id,
                or unime/<checkpoint directory name>.
            revision: the revision mteb records (and caches results by); default: the model's
                fingerprint where unime provides one, else "local".
            instructions: your instructions (see the class docstring).
            use_task_prompts: use the tasks' own prompts where ``instructions`` has none.
            batch_size: inputs per forward pass; default: mteb's encode_kwargs["batch_size"].
            meta: more mteb ModelMeta fields (license, reference, training_datasets, ...).
            encode_options: passed to Model.encode (max_pixels, max_length, truncate, num_threads...).
        """
        _import_mteb()
        if isinstance(model, (str, os.PathLike)):
            from ..model import Model

            model = Model.from_pretrained(model)
        self.model = model
        self.instructions = dict(instructions or {})
        self.use_task_prompts = use_task_prompts
        self.batch_size = batch_size
        self.encode_options = encode_options
        self._meta = self._make_meta(name, revision, dict(meta or {}))

    def _make_meta(self, name: Optional[str], revision: Optional[str], extra: dict) -> Any:
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        params = [t for _, t in self.model.named_parameters()]
        text_only = getattr(self.model, "image_token_id", 0) is None
        fields = dict(
            loader=None, name=name or _default_name(self.model.path),
            revision=revision or getattr(self.model, "fingerprint", None) or "local",
            release_date=None, languages=None, n_parameters=sum(t.numel() for t in params),
            memory_usage_mb=round(sum(t.numel() * t.element_size() for t in params) / 2**20, 1),
            max_tokens=self.model.max_length or None, embed_dim=self.model.hidden_size, license=None,
            open_weights=None, public_training_code=None, public_training_data=None, framework=["PyTorch"],
            # Model.encode L2-normalises, so cosine and dot product agree; cosine is what UniME reports.
            similarity_fn_name=ScoringFunction.COSINE, use_instructions=True, training_datasets=None,
            # mteb refuses a task none of whose modalities the model has, and warns on partial overlap.
            modalities=["text"] if text_only else ["image", "text"], model_type=["dense"],
        )
        fields.update(extra)
        return ModelMeta(**fields)

    @property
    def mteb_model_meta(self) -> Any:
        return self._meta

    def instruction_for(self, task_metadata: Any, prompt_type: Any = None) -> Optional[str]:
        """The instruction inputs of this task side get (None: the zero-shot prompts)."""
        kind = _prompt_type_name(prompt_type)
        task, task_type = task_metadata.name, task_metadata.type
        if kind == "document":
            keys = [f"{task}-document", f"{task_type}-document", "document"]
        elif kind is not None:
            keys = [f"{task}-{kind}", task, f"{task_type}-{kind}", task_type, kind]
        else:
            keys = [task, task_type]
        for key in keys:
            if key in self.instructions:
                return self.instructions[key] or None
        if not self.use_task_prompts:
            return None
        prompt = task_metadata.prompt
        if isinstance(prompt, Mapping):
            return (prompt.get(kind) or None) if kind is not None else None
        if isinstance(prompt, str) and kind != "document":
            return prompt or None
        return None

    def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, prompt_type: Any = None,
               **kwargs: Any) -> np.ndarray:
        """mteb's encode: one (N, hidden) float32 row per input of the DataLoader, in order."""
        from tqdm.auto import tqdm

        instruction = self.instruction_for(task_metadata, prompt_type)
        batch_size = self.batch_size or kwargs.get("batch_size") or 8
        quiet = not kwargs.get("show_progress_bar", True)
        chunks: list[np.ndarray] = []
        texts: list = []
        images: list = []

        def flush(n: int) -> None:
            t, im = texts[:n], images[:n]
            del texts[:n], images[:n]
            chunks.append(self.model.encode(t if any(x is not None for x in t) else None,
                                            im if any(x is not None for x in im) else None,
                                            instruction=instruction, batch_size=batch_size, output="numpy",
                                            show_progress=False, **self.encode_options))

        # Inputs are pooled across the loader's batches so each forward pass has batch_size inputs
        # (mteb's image-text pair classification loads its images one per batch).
        for batch in tqdm(inputs, desc=f"unime: {task_metadata.name}", disable=quiet):
            batch_texts, batch_images = _batch_inputs(batch)
            n = len(batch_texts if batch_texts is not None else batch_images)
            texts.extend(batch_texts if batch_texts is not None else [None] * n)
            images.extend(batch_images if batch_images is not None else [None] * n)
            while len(texts) >= batch_size:
                flush(batch_size)
        if texts:
            flush(len(texts))
        if not chunks:
            return np.zeros((0, self.model.hidden_size), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)

    def __repr__(self) -> str:
        return f"MtebEncoder({self._meta.name}, {self.model!r})"


def _batch_inputs(batch: Mapping[str, Any]) -> tuple[Optional[list], Optional[list]]:
    """(texts, images) of one mteb batch: the "text" / "image" columns, parallel lists."""
    other = sorted({"audio", "video"} & set(batch))
    if other:
        raise ValueError(f"unime models take text and images; this task gives {', '.join(other)}")
    texts = list(batch["text"]) if "text" in batch else None
    images = list(batch["image"]) if "image" in batch else None
    if texts is None and images is None:
        raise ValueError(f"an mteb batch with neither 'text' nor 'image' (columns: {sorted(batch)})")
    if texts is not None and images is not None:
        # An image+text row with an empty text (some any2any queries) is the image alone.
        texts = [t if t or im is None else None for t, im in zip(texts, images)]
    return texts, images


def as_mteb_model(model: Any, **options: Any) -> MtebEncoder:
    """``MtebEncoder(model, **options)``: a unime.Model (or checkpoint path) as an mteb encoder."""
    return MtebEncoder(model, **options)


__all__ = ["MtebEncoder", "as_mteb_model", "MTEB_VERSION"]
