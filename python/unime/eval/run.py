"""unime.eval.Evaluation: a recorded, resumable evaluation run in one output folder.

Every dataset's result is written to <output_dir>/results/<suite>/<dataset>.json as soon as it is
done, next to the record of what produced it (model path and fingerprint, dtype, device, prompts,
image resolution, package versions). Running again resumes: datasets already done with the same
model and settings are read back, not recomputed; a folder holding another model's results is refused.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
from typing import Any, Optional, Sequence

from . import classification, mmeb, retrieval, sugarcrepe
from .embed import Embedder, resolution_size


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("unime", "torch", "numpy", "pillow", "transformers", "faiss-cpu"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)  # a run killed mid-write leaves the previous file, never half a file


class Evaluation:
    """Evaluates one model on MMEB, image-text retrieval, SugarCrepe and zero-shot classification.

    Args:
        model: a unime.Model.
        output_dir: where results, the report and the charts go; also what a resumed run reads.
        batch_size: inputs per forward pass.
        image_resolution: None (the processor's own resizing), "low" (336x336), "mid" (672x672),
            "high" (1344x1344), an int or (width, height): images are resized to it first, as
            VLM2Vec's and UniME-V2's eval scripts do (skipped for Phi-3.5-V, as there).
        resume: reuse finished datasets found in output_dir (default); False recomputes them.
        show_progress: tqdm bars (default: for long stages).
    """

    def __init__(self, model, output_dir: str | os.PathLike, *, batch_size: int = 16, image_resolution: Any = None,
                 num_threads: int = 0, resume: bool = True, show_progress: Optional[bool] = None):
        self.model = model
        self.output_dir = os.fspath(output_dir)
        size = resolution_size(image_resolution)
        if size is not None and model.model_type == "phi3_v":
            size = None  # Phi-3.5-V's resolution is its crop count, not a pre-resize (VLM2Vec skips it too)
        self.image_resolution = image_resolution
        self.embedder = Embedder(model, batch_size=batch_size, image_size=size, num_threads=num_threads,
                                 show_progress=show_progress)
        self.resume = resume
        self.results: dict[tuple[str, str], dict] = {}
        self._record = {
            "model": {"path": os.fspath(model.path), "fingerprint": model.fingerprint, "model_type": model.model_type,
                      "dtype": str(model.dtype).removeprefix("torch."), "device": str(model.device)},
            "image_resolution": list(size) if size else None,
            "batch_size": batch_size,
            "versions": _versions(),
        }

    # ---- bookkeeping -----------------------------------------------------------------------------

    def _path(self, suite: str, name: str) -> str:
        return os.path.join(self.output_dir, "results", suite, _safe(name) + ".json")

    def _run(self, suite: str, name: str, settings: dict, compute) -> dict:
        path = self._path(suite, name)
        if self.resume and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                done = json.load(f)
            theirs = done["record"]["model"]
            if theirs["fingerprint"] != self._record["model"]["fingerprint"]:
                raise ValueError(
                    f"{path} holds results of another model ({theirs['path']}, fingerprint {theirs['fingerprint']}); "
                    f"this run's model is {self._record['model']['path']} (fingerprint "
                    f"{self._record['model']['fingerprint']}). Use another output_dir, or resume=False to overwrite.")
            if done.get("settings") == settings and done["record"]["image_resolution"] == \
                    self._record["image_resolution"]:
                self.results[(suite, name)] = done
                return done
        result = compute()
        result["settings"] = settings
        result["record"] = {**self._record, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        _write_json(path, result)
        self.results[(suite, name)] = result
        return result

    # ---- suites ----------------------------------------------------------------------------------

    def mmeb(self, data_dir: Optional[str] = None, image_dir: Optional[str] = None, *,
             datasets: Optional[Sequence[str]] = None, source: str = "local",
             meta_tasks: Optional[dict[str, str]] = None) -> dict[str, float]:
        """MMEB in the official eval format. data_dir holds NAME.jsonl / .json / .parquet or NAME/*.parquet
        per dataset (the hub's TIGER-Lab/MMEB-eval layout); image_dir the unpacked eval images.
        datasets: default all 36 found in data_dir (with source="hub": all 36 from the hub through
        `datasets`). meta_tasks: {dataset: "Classification" | "VQA" | "Retrieval" | "Grounding"} for
        datasets of your own in MMEB's format. Returns the summary (meta-task, IND/OOD, overall means)."""
        meta_tasks = dict(meta_tasks or {})
        for name, task in meta_tasks.items():
            if task not in mmeb.META_TASKS:
                raise ValueError(f"meta_tasks[{name!r}] = {task!r}: not one of {', '.join(mmeb.META_TASKS)}")
        if source not in ("local", "hub"):
            raise ValueError(f"source must be 'local' or 'hub', got {source!r}")
        if datasets is None:
            if source == "hub":
                datasets = mmeb.ALL_DATASETS
            else:
                from .data import find_data_file

                datasets = [n for n in mmeb.ALL_DATASETS if find_data_file(data_dir, n)]
                if not datasets:
                    raise FileNotFoundError(f"{data_dir}: none of MMEB's 36 datasets found; name them with datasets=")
        for name in datasets:
            self._run("mmeb", name, {"source": source, "meta_task": meta_tasks.get(name)},
                      lambda name=name: mmeb.evaluate_dataset(self.embedder, name, data_dir, image_dir, source,
                                                              meta_tasks.get(name)))
        return self.mmeb_summary()

    def mmeb_summary(self) -> dict[str, float]:
        return mmeb.summarise([r for (suite, _), r in self.results.items() if suite == "mmeb"])

    def retrieval(self, name: str, data: str, image_dir: Optional[str] = None, *,
                  image_instruction: Optional[str] = None, text_instruction: Optional[str] = None,
                  ks: Sequence[int] = (1, 5, 10), split: str = "test") -> dict[str, float]:
        """Flickr30K / MSCOCO-format retrieval: R@k both ways and image->text NDCG@5. The default
        prompts are the model's zero-shot ones (UniME v1's protocol); UniME-V2's is
        image_instruction="Find an image caption describing the given image." with plain captions."""
        settings = {"image_instruction": image_instruction, "text_instruction": text_instruction, "ks": list(ks),
                    "split": split}
        return self._run("retrieval", name, settings, lambda: retrieval.evaluate(
            self.embedder, name, data, image_dir, image_instruction=image_instruction,
            text_instruction=text_instruction, ks=tuple(ks), split=split))["metrics"]

    def sugarcrepe(self, data_dir: str, image_dir: str, *, subsets: Optional[Sequence[str]] = None,
                   image_instruction: Optional[str] = None, text_instruction: Optional[str] = None
                   ) -> dict[str, float]:
        """SugarCrepe's subsets found in data_dir (or those named); returns accuracy per subset and
        the Replace / Swap / Add means."""
        from .data import find_data_file

        subsets = list(subsets) if subsets is not None else [s for s in sugarcrepe.SUBSETS
                                                              if find_data_file(data_dir, s)]
        if not subsets:
            raise FileNotFoundError(f"{data_dir}: no SugarCrepe subset files ({', '.join(sugarcrepe.SUBSETS)})")
        settings = {"image_instruction": image_instruction, "text_instruction": text_instruction}
        results = [self._run("sugarcrepe", s, settings, lambda s=s: sugarcrepe.evaluate_subset(
            self.embedder, s, data_dir, image_dir, image_instruction=image_instruction,
            text_instruction=text_instruction)) for s in subsets]
        return {**{r["dataset"]: r["metrics"]["accuracy"] for r in results}, **sugarcrepe.summarise(results)}

    def zero_shot(self, name: str, data: str, image_dir: Optional[str] = None, *,
                  classnames: Optional[Sequence[str]] = None, templates: Sequence[str] = ("a photo of a {}.",),
                  image_instruction: Optional[str] = None, text_instruction: Optional[str] = None,
                  ks: Sequence[int] = (1, 5)) -> dict[str, float]:
        """Zero-shot classification from class names and prompt templates; top-k accuracy."""
        settings = {"classnames": list(classnames) if classnames else None, "templates": list(templates),
                    "image_instruction": image_instruction, "text_instruction": text_instruction, "ks": list(ks)}
        return self._run("zero_shot", name, settings, lambda: classification.evaluate(
            self.embedder, name, data, image_dir, classnames=classnames, templates=templates,
            image_instruction=image_instruction, text_instruction=text_instruction, ks=tuple(ks)))["metrics"]

    # ---- outputs ---------------------------------------------------------------------------------

    def _finished(self) -> list[dict]:
        """This run's results and those an earlier run of the same model left in output_dir, so the
        report covers every suite evaluated into the folder."""
        found = dict(self.results)
        root = os.path.join(self.output_dir, "results")
        for suite in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            for name in sorted(os.listdir(os.path.join(root, suite))):
                if not name.endswith(".json"):
                    continue
                with open(os.path.join(root, suite, name), encoding="utf-8") as f:
                    result = json.load(f)
                key = (result["suite"], result["dataset"])
                same_model = result["record"]["model"]["fingerprint"] == self._record["model"]["fingerprint"]
                if key not in found and same_model:
                    found[key] = result
        return list(found.values())

    @property
    def errors(self) -> list[dict]:
        """Every row left out of the results in output_dir, with its file and line and the reason."""
        return [e for r in self._finished() for e in r["errors"]]

    def report(self, charts: bool = True) -> str:
        """Writes results.md (the tables), results.json (all results and the record) and, with
        charts, one bar chart per MMEB meta-task and per other suite under charts/; returns the markdown."""
        from .report import render_charts, render_markdown

        results = self._finished()
        markdown = render_markdown(results, self._record)
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, "results.md"), "w", encoding="utf-8") as f:
            f.write(markdown)
        _write_json(os.path.join(self.output_dir, "results.json"), {"record": self._record, "results": results})
        if charts and results:
            render_charts(results, os.path.join(self.output_dir, "charts"))
        return markdown
