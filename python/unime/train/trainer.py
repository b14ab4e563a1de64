"""unime.Trainer: UniME's two stages and the UniME-V2 objective on the C++ trainer (csrc/train).

Python loads the examples (datasets, teacher embeddings, image decoding with Pillow) and runs the
loop: progress bar, metrics, callbacks, evaluation, checkpoints. Each optimiser step (GradCache,
the objective, backward, clipping, AdamW and its schedule, the data order) runs in C++.

    trainer = unime.Trainer(model, stage="instruct", batch_size=64, chunk_size=8, max_steps=1000,
                            output_dir="runs/stage2")
    trainer.fit("mmeb_train.jsonl")            # resumes from the latest complete checkpoint
    trainer.save_adapter("runs/stage2/adapter")  # PEFT's format
    trainer.save_merged("runs/stage2/merged")    # a Hugging Face checkpoint
"""

from __future__ import annotations

import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from .. import _C
from ..images import DEFAULT_MAX_PIXELS, decode_each
from .config import TrainerConfig
from .data import Example, Input, as_dataset
from .teacher import TeacherEmbeddings, teacher_embeddings


class Callback:
    """Override what you need; every method gets the trainer."""

    def on_step_end(self, trainer: "Trainer", metrics: dict) -> None: ...

    def on_evaluate(self, trainer: "Trainer", metrics: dict) -> None: ...

    def on_save(self, trainer: "Trainer", path: str) -> None: ...


class Trainer:
    """Trains LoRA adapters of a unime.Model.

    Args:
        model: a unime.Model (loaded with the dtype and device to train in); the trainer adds its
            adapters (seeded by config.seed) and freezes every base weight.
        stage: "distill" (UniME stage 1), "instruct" (stage 2) or "judge" (UniME-V2); the stage's
            paper defaults apply (TrainerConfig.for_stage) under `config` and keyword overrides.
        config: a TrainerConfig, a dict, or a path to a JSON / YAML file.
        teacher: stage 1's teacher: TeacherEmbeddings (by example id) or a callable texts -> (n, d).
        callbacks: Callback objects (or plain callables, called as on_step_end(trainer, metrics)).
        evaluate: a callable model -> dict of metrics, run every config.eval_every steps and logged.
        process_group: the torch.distributed process group to train with (default: the default group
            when torch.distributed is initialised, e.g. under torchrun; else one process). The global
            batch (config.batch_size) is split over its ranks; embeddings are gathered with gradient
            for the in-batch objectives and adapter gradients summed, so N ranks compute the 1-rank step.
        **overrides: TrainerConfig fields.
    """

    def __init__(self, model, stage: Optional[str] = None, config: Any = None, *, teacher: Any = None,
                 callbacks: Sequence[Any] = (), evaluate: Optional[Callable] = None, process_group: Any = None,
                 **overrides):
        if isinstance(config, (str, os.PathLike)):
            config = TrainerConfig.load(config)
        base = config.to_dict() if isinstance(config, TrainerConfig) else dict(config or {})
        stage = stage or base.get("stage", "instruct")
        base.pop("stage", None)
        self.config = TrainerConfig.for_stage(stage, **{**base, **overrides})
        self.model = model
        self.teacher = teacher
        self.callbacks = list(callbacks)
        self.evaluate_fn = evaluate
        group, monitor = _process_groups(process_group)
        self._core = _C.Trainer(model._core, self.config.core_json(), group, monitor, self.config.collective_timeout)
        self.history: list[dict] = []
        if self.config.stage == "distill" and teacher is None:
            raise ValueError("stage 1 (distill) needs a teacher: TeacherEmbeddings.from_file(...) or a callable")

    # ---- one step ---------------------------------------------------------------------------------

    def step(self, examples: Sequence[Example]) -> dict:
        """One optimiser step on `examples` (this rank's share of the global batch). Returns its metrics."""
        start = time.perf_counter()
        return self._step_prepared(self._prepare(examples), start)

    def _step_prepared(self, arguments: dict, start: float) -> dict:
        """The C++ step on _prepare's arguments; `start` is when the step began (its "seconds")."""
        result = self._core.step(**arguments)
        seconds = time.perf_counter() - start
        skipped = {}
        for example_id, reason in result.skipped:
            skipped.setdefault(example_id, reason)
        return {"step": result.step, "loss": result.loss, "lr": result.learning_rate, "grad_norm": result.grad_norm,
                "examples": result.examples, "seconds": seconds, "examples_per_s": result.examples / max(seconds, 1e-9),
                "skipped": [{"id": k, "reason": v} for k, v in skipped.items()],
                "skipped_update": result.skipped_update}

    def gradients(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """The gradient a step on `examples` would apply (before clipping), by adapter parameter path,
        without updating anything."""
        return dict(self._core.gradients(**self._prepare(examples)))

    def _prepare(self, examples: Sequence[Example]) -> dict:
        """The C++ step's arguments: parallel input lists per side, decoded images, teacher / scores,
        and per-example failures (an unreadable image, a missing teacher id) named by example id."""
        cfg = self.config
        ids = [str(e.id) for e in examples]
        failures = [""] * len(examples)
        sides: dict[str, dict] = {}
        teacher = scores = None
        if cfg.stage == "distill":
            texts = [e.text for e in examples]
            teacher, failures = self._teacher(examples, texts, failures)
            sides["texts"] = {"texts": [t if isinstance(t, str) else "" for t in texts]}
        else:
            def side(name: str, inputs_of: Callable[[Example], list]):
                per = len(inputs_of(examples[0])) if examples else 0
                rows = []
                for k, e in enumerate(examples):
                    inputs = inputs_of(e)
                    if len(inputs) != per:
                        failures[k] = failures[k] or f"has {len(inputs)} {name}, the batch's first example {per}"
                        inputs = [Input(text="")] * per
                    rows.extend((k, x) for x in inputs)
                sides[name] = self._decode(rows, failures)
                return per

            side("queries", lambda e: [e.query])
            if cfg.stage == "instruct":
                side("positives", lambda e: [e.positive])
                negatives = side("negatives", lambda e: list(e.negatives))
                if negatives == 0:
                    del sides["negatives"]
            else:
                per = side("candidates", lambda e: list(e.candidates))
                scores = torch.zeros(len(examples), per)
                for k, e in enumerate(examples):
                    if len(e.scores) == per:
                        scores[k] = torch.tensor(e.scores, dtype=torch.float32)
                    else:
                        failures[k] = failures[k] or f"has {len(e.scores)} judge scores for {per} candidates"
        if cfg.on_error == "raise":
            for i, why in zip(ids, failures):
                if why:
                    raise ValueError(f"example {i}: {why}")
        return dict(example_ids=ids, sides=sides, teacher=teacher, scores=scores,
                    negatives_per_query=len(examples[0].negatives) if cfg.stage == "instruct" and examples else 0,
                    candidates_per_query=len(examples[0].candidates) if cfg.stage == "judge" and examples else 0,
                    failures=failures)

    def _teacher(self, examples, texts, failures):
        ids = [str(e.id) for e in examples]
        try:
            return teacher_embeddings(self.teacher, ids, texts), failures
        except KeyError:
            if self.config.on_error == "raise":
                raise  # "teacher id '<example id>' is not in <file>"
        # Skip mode: look up what exists; missing ids fail their example.
        rows = self.teacher.rows(ids)
        dim = self.teacher.dim
        out = torch.zeros(len(ids), dim)
        found = [k for k, r in enumerate(rows) if r is not None]
        if found:
            out[found] = self.teacher.lookup([ids[k] for k in found])
        for k, r in enumerate(rows):
            if r is None:
                failures[k] = failures[k] or f"teacher id {ids[k]!r} is not in {self.teacher.source}"
        return out, failures

    def _decode(self, rows: list, failures: list) -> dict:
        """Parallel lists for the C++ side; an unreadable image fails its example (named)."""
        limit = self.config.max_pixels or DEFAULT_MAX_PIXELS
        texts, images, instructions, prompts = [], [], [], []
        decoded = decode_each([None if failures[k] else x.image for k, x in rows], max_pixels=limit)
        for (k, x), image in zip(rows, decoded):
            if isinstance(image, Exception) and not failures[k]:
                failures[k] = f"image {x.image if isinstance(x.image, str) else type(x.image).__name__}: {image}"
            if failures[k]:  # a placeholder the C++ side leaves out of the loss
                texts.append("")
                images.append(None)
                instructions.append(None)
                prompts.append(None)
                continue
            if x.prompt is not None and x.image is None and "<|image_1|>" in x.prompt:
                failures[k] = "its prompt has an <|image_1|> tag but no image"
            texts.append(x.text)
            images.append(image)
            instructions.append(x.instruction)
            prompts.append(x.prompt)
        return {"texts": texts, "images": images, "instructions": instructions, "prompts": prompts}

    # ---- the loop ---------------------------------------------------------------------------------

    def fit(self, data: Any, *, resume: Any = True, max_steps: Optional[int] = None,
            progress: bool = True, prefetch: bool = True) -> list[dict]:
        """Trains until config.max_steps (or `max_steps`, to stop early) optimiser steps are done.

        data: a dataset (sequence of Example), a path (.jsonl / .json) or rows for the stage.
        resume: True: continue from the latest complete checkpoint under config.output_dir when
            there is one; a path: from that checkpoint; False: start fresh.
        prefetch: decode the next step's images (and look up its teacher rows) on a worker thread
            while a step runs; the batches, their order and checkpoints are the same either way. It
            is off for a callable teacher (a model: it would run beside the step, on the same device
            and random generators). The next step is prepared before this step's callbacks run, so
            a callback that changes what preparing reads (config.max_pixels, on_error, the teacher)
            takes effect a step later; pass prefetch=False for that.
        Returns the metrics of every step run by this call (also appended to output_dir/metrics.jsonl).
        """
        cfg = self.config
        dataset = as_dataset(data, cfg.stage, cfg.image_root)
        self._core.set_num_examples(len(dataset))
        if resume:
            self.resume(resume if isinstance(resume, (str, os.PathLike)) else None)
        stop = min(cfg.max_steps, max_steps) if max_steps is not None else cfg.max_steps
        log = None
        if cfg.output_dir and self.rank == 0:
            os.makedirs(cfg.output_dir, exist_ok=True)
            log = open(os.path.join(cfg.output_dir, "metrics.jsonl"), "a", encoding="utf-8")
        bar = _progress_bar(stop, self.global_step, progress and self.rank == 0)
        run: list[dict] = []
        if cfg.stage == "distill" and not isinstance(self.teacher, TeacherEmbeddings):
            prefetch = False  # a callable teacher runs its model: on the loop's thread, between steps
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unime-prepare") if prefetch else None
        ahead = None  # (indices, future of their _prepare) for the step after this one
        try:
            while self.global_step < stop:
                start = time.perf_counter()
                indices = self._core.next_indices()
                if ahead is not None and ahead[0] == indices:
                    arguments = ahead[1].result()  # raises here what _prepare raised, as without prefetch
                else:
                    arguments = self._prepare([dataset[i] for i in indices])
                ahead = None
                if pool is not None and self.global_step + 1 < stop:
                    following = self._core.peek_indices()
                    ahead = (following, pool.submit(self._prepare, [dataset[i] for i in following]))
                metrics = self._step_prepared(arguments, start)
                run.append(metrics)
                self.history.append(metrics)
                if log and (metrics["step"] % max(cfg.log_every, 1) == 0 or metrics["skipped"]):
                    log.write(json.dumps(metrics) + "\n")
                    log.flush()
                for cb in self.callbacks:
                    (cb.on_step_end if hasattr(cb, "on_step_end") else cb)(self, metrics)
                if cfg.eval_every and self.evaluate_fn and metrics["step"] % cfg.eval_every == 0:
                    self.run_evaluation(log)
                if cfg.output_dir and cfg.save_every and metrics["step"] % cfg.save_every == 0:
                    self.save_checkpoint()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}",
                                    ex_s=f"{metrics['examples_per_s']:.1f}")
            if cfg.output_dir and (not cfg.save_every or self.global_step % cfg.save_every):
                self.save_checkpoint()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
            if log:
                log.close()
        return run

    def run_evaluation(self, log=None) -> dict:
        self.model.eval()
        try:
            with torch.inference_mode():
                metrics = dict(self.evaluate_fn(self.model))
        finally:
            self.model.train()
        metrics["step"] = self.global_step
        if log:
            log.write(json.dumps({"eval": metrics}) + "\n")
            log.flush()
        for cb in self.callbacks:
            if hasattr(cb, "on_evaluate"):
                cb.on_evaluate(self, metrics)
        return metrics

    # ---- checkpoints and export -------------------------------------------------------------------

    @property
    def checkpoint_root(self) -> str:
        if not self.config.output_dir:
            raise ValueError("set config.output_dir to save or resume checkpoints")
        return os.path.join(self.config.output_dir, "checkpoints")

    def save_checkpoint(self) -> str:
        """Writes output_dir/checkpoints/checkpoint-<step>/ (adapters in PEFT's format, optimiser, RNG
        of C++, Python and numpy, data position, config), completed by its marker; keeps keep_last."""
        py_state = {"random": _jsonable(random.getstate()), "numpy": _jsonable(np.random.get_state()),
                    "trainer_config": self.config.to_dict()}
        path = self._core.save_checkpoint(self.checkpoint_root, self.config.keep_last,
                                          {"python_state.json": json.dumps(py_state).encode()})
        for cb in self.callbacks:
            if hasattr(cb, "on_save"):
                cb.on_save(self, path)
        return path

    def resume(self, path: Optional[str] = None) -> Optional[str]:
        """Restores `path` or the latest complete checkpoint under output_dir (None when there is none)."""
        if path is None:
            if not self.config.output_dir:
                return None
            path = _C.latest_checkpoint(self.checkpoint_root)
            if path is None:
                return None
        extra = self._core.load_checkpoint(os.fspath(path))
        if "python_state.json" in extra:
            state = json.loads(extra["python_state.json"])
            random.setstate(_tupled(state["random"]))
            np.random.set_state(_tupled(state["numpy"]))
        return os.fspath(path)

    def save_adapter(self, path: str | os.PathLike) -> None:
        """The adapters in PEFT's format (adapter_config.json + adapter_model.safetensors)."""
        self._core.save_adapter(os.fspath(path))

    def save_merged(self, path: str | os.PathLike) -> None:
        """The model with the adapters merged, as a Hugging Face checkpoint transformers loads."""
        self._core.save_merged(self.model.path, os.fspath(path))

    @property
    def global_step(self) -> int:
        return self._core.global_step

    @property
    def rank(self) -> int:
        return self._core.rank

    @property
    def world_size(self) -> int:
        return self._core.world_size

    @property
    def adapted_modules(self) -> list[str]:
        return list(self._core.adapted_modules)

    def trainable_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return self._core.trainable_parameters()


def _process_groups(group: Any):
    """(group, monitor): the process group to train with (None: one process) and a gloo group that can
    name a rank which stops answering (torch's monitored barrier is gloo's)."""
    import torch.distributed as dist

    if group is None:
        if not (dist.is_available() and dist.is_initialized()):
            return None, None
        group = dist.group.WORLD
    if dist.get_world_size(group) == 1:
        return None, None
    # A gloo group of its own for the monitored barrier: the training group's connections are the ones
    # that break when a rank dies.
    return group, dist.new_group(backend="gloo")


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="unime.Trainer", unit="step")


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    return x


def _tupled(x):
    if isinstance(x, dict) and "__ndarray__" in x:
        return np.asarray(x["__ndarray__"], dtype=x["dtype"])
    if isinstance(x, list):
        return tuple(_tupled(v) for v in x)
    return x
