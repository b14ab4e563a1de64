"""TrainerConfig: every setting of a training run, as a dataclass that round-trips to JSON and YAML.

The fields that change the maths go to the C++ trainer (csrc/train/config.h, which validates them
and names a bad field); the rest (where and how often to save, log and evaluate) stay in Python.
Defaults follow UniME where the paper gives a value (k = 8, beta = 0.1, tau = 0.02, LoRA rank 16 in
stage 2 and 32 in stage 1) and VLM2Vec / E5-V where it does not (see unime-method.md sections 2-3).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

# Fields the C++ trainer reads (everything else is the Python loop's).
_CORE_FIELDS = (
    "stage", "trainable", "lora_targets", "lora_regex", "lora_components", "lora_r", "lora_alpha", "lora_dropout",
    "use_rslora",
    "lora_init", "lora_dtype", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
    "lr_schedule", "warmup_steps", "max_steps", "max_grad_norm", "batch_size", "grad_accumulation", "chunk_size",
    "max_length", "gradient_checkpointing", "mixed_precision", "temperature", "distill_temperature", "kl_direction",
    "kl_reduction", "hard_negatives", "false_negative_margin", "all_in_batch", "judge_eps", "distill_template", "seed",
    "on_error",
)

STAGE_DEFAULTS = {
    # UniME stage 1: QLoRA r = 32 on the LLM only, lr 5e-4, batch 768 (paper Table 6); tau is not given
    # (E5-V's 0.05).
    "distill": dict(lora_r=32, lora_alpha=64, learning_rate=5e-4, lora_components=["language_model"]),
    # UniME stage 2: r = 16, lr 1e-4 (Phi-3.5-V) / 2e-5 (LLaVA-1.6), 1,000 steps, batch 1024, k 8, beta 0.1.
    "instruct": dict(lora_r=16, lora_alpha=64, lora_dropout=0.1, learning_rate=1e-4),
    # UniME-V2: r = 16, lr 1e-4, 2,000 steps, tau 0.02, 8 candidates' judge scores.
    "judge": dict(lora_r=16, lora_alpha=64, lora_dropout=0.1, learning_rate=1e-4),
}


@dataclass
class TrainerConfig:
    stage: str = "instruct"  # "distill" (UniME stage 1) | "instruct" (stage 2) | "judge" (UniME-V2)
    # "lora": adapters on a frozen base (UniME's QLoRA-style training); "all": every weight (a model
    # that starts from random weights, like the demo's student).
    trainable: str = "lora"

    # LoRA, PEFT's names. target names match the end of a Linear's Hugging Face path; lora_regex
    # (one regex over the whole path) replaces them when set.
    # The defaults cover every projection of the decoder families, fused or not (Phi-3's qkv_proj and
    # gate_up_proj, as VLM2Vec trains Phi-3.5-V); names a model lacks match nothing.
    lora_targets: list = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj", "qkv_proj", "gate_up_proj"])
    lora_regex: str = ""
    lora_components: list = field(default_factory=lambda: ["language_model"])  # + "vision_tower", "projector"
    lora_r: int = 16
    lora_alpha: float = 64.0
    lora_dropout: float = 0.0
    use_rslora: bool = False
    lora_init: str = "kaiming"
    lora_dtype: str = "float32"

    # AdamW and the schedule.
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_schedule: str = "linear"  # "linear" | "cosine" | "constant", after warmup_steps of linear warmup
    warmup_steps: int = 0
    max_steps: int = 1000
    max_grad_norm: float = 1.0

    # Batching: batch_size examples per optimiser step over every rank; grad_accumulation micro-batches
    # (each its own in-batch loss); GradCache chunks of chunk_size inputs (0: off).
    batch_size: int = 32
    grad_accumulation: int = 1
    chunk_size: int = 0
    max_length: int = 0  # tokens per input; 0: the model's maximum (longer inputs are refused)
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (CUDA autocast)

    # Objectives (docs/losses.md).
    temperature: float = 0.02
    distill_temperature: float = 0.05
    kl_direction: str = "student_teacher"
    kl_reduction: str = "sum"
    hard_negatives: int = 8
    false_negative_margin: float = 0.1
    all_in_batch: bool = False
    judge_eps: float = 1e-8
    distill_template: Optional[str] = None  # "{text} Summary above sentences in one word: \n"; default: the family's

    seed: int = 0
    on_error: str = "raise"  # "raise" | "skip": a bad example is logged and left out of its step

    # The Python loop.
    output_dir: Optional[str] = None  # checkpoints, metrics.jsonl, the final adapter
    save_every: int = 0               # steps between checkpoints (0: only at the end)
    keep_last: int = 2                # complete checkpoints kept
    log_every: int = 1
    eval_every: int = 0               # steps between evaluation hook calls (0: never)
    image_root: Optional[str] = None  # relative image paths of the data are under it
    max_pixels: Optional[int] = None  # decoded image cap (default unime.images.DEFAULT_MAX_PIXELS)
    collective_timeout: float = 1800.0  # seconds a rank waits for the others before failing, naming who

    @classmethod
    def for_stage(cls, stage: str, **overrides) -> "TrainerConfig":
        """The stage's paper defaults, then `overrides`."""
        if stage not in STAGE_DEFAULTS:
            raise ValueError(f"stage must be one of {sorted(STAGE_DEFAULTS)}, got {stage!r}")
        return cls.from_dict({"stage": stage, **STAGE_DEFAULTS[stage], **overrides})

    @classmethod
    def from_dict(cls, data: dict) -> "TrainerConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainerConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def core_json(self) -> str:
        """The fields the C++ trainer reads, as JSON."""
        d = self.to_dict()
        return json.dumps({k: d[k] for k in _CORE_FIELDS})

    def save(self, path: str | os.PathLike) -> None:
        """JSON, or YAML for a .yaml / .yml path."""
        path = os.fspath(path)
        with open(path, "w", encoding="utf-8") as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                yaml.safe_dump(self.to_dict(), f, sort_keys=False)
            else:
                json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainerConfig":
        path = os.fspath(path)
        with open(path, encoding="utf-8") as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                data: Any = yaml.safe_load(f)
            else:
                data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a TrainerConfig file holds a mapping of fields")
        return cls.from_dict(data)
