"""Encoding a corpus to embedding shards on disk: bounded memory, resumable, bad inputs skipped.

    out/shard-00000.npy            (n, dim) float32 (or shard-00000.safetensors, key "embeddings")
    out/shard-00000.ids.jsonl      one JSON id per line, the rows of the shard in order
    out/shard-00000.done.json      written last: the shard is finished ({"file", "count", "ids", "skipped"})
    out/skipped.jsonl              {"id", "source", "reason"} for each input that could not be embedded
    out/manifest.json              {"dim", "dtype", "model": {"path", "fingerprint"}, "shard_size", "inputs",
                                    "shards": [{"file", "count", "ids"}], "skipped", "complete", "run"}
    out/failed-rank-R.json         data-parallel runs: rank R failed ({"run", "rank", "host", "error"})
    out/alive-rank-R.json          data-parallel runs: rank R's heartbeat while it embeds

Shard i holds inputs [i * shard_size, (i + 1) * shard_size) minus the skipped ones. A run killed
half-way resumes without recomputing the shards whose .done.json exists; a folder written by another
model or for other inputs is refused. unime.Index.from_shards reads this layout.

Data-parallel: under torchrun (or with rank / world_size given) process r of W embeds the shards
i with i % W == r, each process reading the same input list; when all are done, rank 0 writes the
complete manifest and skipped.jsonl. Single-process runs also rewrite the manifest after each shard.
Each run has a mark ("run"): under a process group the ranks check at the start that they all read
rank 0's (else the folder is not shared). The end is awaited on files, not with a barrier: ranks
other than 0 return when their own shards are done; rank 0 waits for every shard, and stops if a
rank left failed-rank-R.json, or if the heartbeat of a rank it waits for has not changed for
silence_limit seconds (a process killed outright: SIGKILL, the OOM killer). Finished shards are
kept: the same command resumes.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

import numpy as np
from tqdm.auto import tqdm

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Record:
    """One input of a corpus."""

    id: Any
    text: Optional[str] = None
    image: Optional[str] = None
    instruction: Optional[str] = None
    error: Optional[str] = None  # a row that could not be read: reported as skipped, never embedded


def read_inputs(sources: Iterable[str], texts_file: Optional[str] = None) -> Iterator[Record]:
    """Records from .jsonl lists ({"id", "text", "image", "instruction"}; id defaults to "file:line"),
    image files and folders of images (id = the path), and a text file (one text per line, id = "file:line")."""
    for source in sources:
        if os.path.isdir(source):
            for folder, dirs, files in os.walk(source):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        path = os.path.join(folder, name)
                        yield Record(path, image=path)
        elif source.endswith(".jsonl"):
            from .eval.data import RowError, read_rows

            base = os.path.dirname(os.path.abspath(source))
            for where, row in read_rows(source):
                if isinstance(row, RowError):
                    yield Record(where, error=f"malformed row: {row}")
                    continue
                text, image, instruction = row.get("text"), row.get("image"), row.get("instruction")
                problem = ("text must be a string" if text is not None and not isinstance(text, str) else
                           "image must be a path" if image is not None and not isinstance(image, str) else
                           "instruction must be a string" if instruction is not None and not isinstance(
                               instruction, str) else
                           "neither a text nor an image" if not text and not image else None)
                if problem:
                    yield Record(row.get("id", where), error=f"{where}: {problem}")
                    continue
                if image and not os.path.isabs(image):
                    image = os.path.join(base, image)
                yield Record(row.get("id", where), text or None, image or None, instruction)
        elif source.lower().endswith(IMAGE_EXTENSIONS):
            yield Record(source, image=source)
        else:
            raise ValueError(f"{source}: not a .jsonl list, an image or a folder of images")
    if texts_file:
        with open(texts_file, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    yield Record(f"{texts_file}:{line_no}", text=line.rstrip("\n"))


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_shard(path: str, array: np.ndarray, fmt: str) -> None:
    tmp = path + ".tmp"
    if fmt == "npy":
        with open(tmp, "wb") as f:
            np.save(f, array)
    else:
        from safetensors.numpy import save_file

        save_file({"embeddings": array}, tmp)
    os.replace(tmp, path)


def _rank_and_world(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    rank, world_size = rank or 0, world_size or 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size {world_size})")
    return rank, world_size


def _process_group():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _agree_on_start(dist, out_dir: str, manifest_path: str, check, startup_error: Optional[Exception]) -> str:
    """All ranks at once, after rank 0 wrote the manifest: each reports its host, the run mark it
    reads from the manifest and any error so far (rank 0's refusal of the folder, another rank's
    check). Then every rank stops with the same message if one failed, or if one does not see rank
    0's manifest: the folder is not shared (on several machines it must be on a shared file system).
    Returns rank 0's run mark."""
    seen, error = None, startup_error
    if error is None and os.path.isfile(manifest_path):
        try:
            with open(manifest_path, encoding="utf-8") as f:
                found = json.load(f)
            seen = found.get("run")
            if dist.get_rank() != 0:
                check(found)
        except Exception as e:
            error = e
    message = None if error is None else f"{type(error).__name__}: {error}"
    views = [None] * dist.get_world_size()
    dist.all_gather_object(views, (socket.gethostname(), seen, message))
    if error is not None:
        raise error
    for r, (host, _, message) in enumerate(views):
        if message:
            raise RuntimeError(f"rank {r} on {host} could not start: {message}")
    blind = [f"rank {r} on {host}" for r, (host, run, _) in enumerate(views) if run != views[0][1]]
    if blind:
        raise RuntimeError(f"the output folder {out_dir} is not shared between the processes: "
                           f"{', '.join(blind)} cannot see the manifest.json rank 0 wrote there (none, or another "
                           "run's); give every machine the same folder on a shared file system")
    return views[0][1]


class _Heartbeat:
    """A data-parallel rank's sign of life while it embeds: a thread rewrites alive-rank-R.json every
    `every` seconds (the model's forward releases the GIL), so rank 0 can tell a rank killed outright
    (SIGKILL, the OOM killer), which leaves no failure note, from a slow one."""

    def __init__(self, out_dir: str, rank: int, every: float):
        self.path, self.rank, self.every = os.path.join(out_dir, f"alive-rank-{rank}.json"), rank, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"unime-heartbeat-{rank}", daemon=True)

    def _beat(self) -> None:
        beat = 0
        while True:
            beat += 1
            try:
                _write_atomic(self.path, json.dumps({"rank": self.rank, "host": socket.gethostname(),
                                                     "beat": beat}).encode())
            except OSError:
                pass  # a full or flaky disk: the shards' own writes will say so
            if self.stop.wait(self.every):
                return

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class _Silence:
    """Rank 0's watch on the ranks it waits for: a rank whose alive-rank-R.json has not changed for
    `limit` seconds of rank 0's own clock (no clock is compared across machines) is taken for dead."""

    def __init__(self, out_dir: str, limit: float):
        self.out_dir, self.limit = out_dir, limit
        self.seen: dict[int, tuple[Optional[str], float]] = {}

    def check(self, ranks: Iterable[int]) -> None:
        now = time.monotonic()
        for r in ranks:
            try:
                with open(os.path.join(self.out_dir, f"alive-rank-{r}.json"), encoding="utf-8") as f:
                    beat = f.read()
            except OSError:
                beat = None
            last, since = self.seen.get(r, (beat, now))
            if beat != last or r not in self.seen:
                self.seen[r] = (beat, now)
            elif now - since > self.limit:
                host = json.loads(beat)["host"] if beat else "its host"
                raise RuntimeError(f"rank {r} on {host} has not been heard from for {now - since:.0f} s (killed "
                                   "outright, e.g. out of memory?); rank 0 stops. Finished shards are kept: run "
                                   "the same command again to resume")


def _remove_notes(out_dir: str) -> None:
    for path in glob.glob(os.path.join(out_dir, "failed-rank-*.json")) + glob.glob(
            os.path.join(out_dir, "alive-rank-*.json")):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _failure_path(out_dir: str, rank: int) -> str:
    return os.path.join(out_dir, f"failed-rank-{rank}.json")


def _raise_if_another_failed(out_dir: str) -> None:
    """Rank 0, waiting for the others' shards: a rank that failed left failed-rank-R.json (rank 0
    removed older ones when this run started), so rank 0 stops too instead of waiting for ever."""
    for path in sorted(glob.glob(os.path.join(out_dir, "failed-rank-*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                note = json.load(f)
        except (OSError, ValueError):
            continue  # removed meanwhile
        raise RuntimeError(f"rank {note['rank']} on {note['host']} failed ({note['error']}); rank 0 stops too. "
                           "Finished shards are kept: run the same command again to resume")


def encode_to_shards(model, records: Iterable[Record], out_dir: str | os.PathLike, *, shard_size: int = 10000,
                     batch_size: int = 32, fmt: str = "npy", dtype: str = "float32", inputs_key: str = "",
                     show_progress: Optional[bool] = None, rank: Optional[int] = None,
                     world_size: Optional[int] = None, poll_seconds: float = 2.0, silence_limit: float = 600.0,
                     num_threads: int = 0, **encode_options) -> dict:
    """Embeds records into shards under out_dir (see the module docstring); returns the manifest.

    inputs_key: a description of the inputs (the command line's sources), checked on resume so a
    folder is never continued with different inputs. rank, world_size: this process's part of a
    data-parallel run (default: torch.distributed's, else the RANK / WORLD_SIZE environment, else
    0 of 1); rank 0 waits for the others' shards by polling every poll_seconds, and stops when a
    rank it waits for left a failure note or has given no sign of life for silence_limit seconds.
    num_threads: Model.encode's threads for decoding and preprocessing (0: one per core); not
    recorded, since it does not change the vectors. encode_options go to Model.encode and are recorded.
    """
    if fmt not in ("npy", "safetensors"):
        raise ValueError(f"format must be 'npy' or 'safetensors', got {fmt!r}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    rank, world = _rank_and_world(rank, world_size)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, "manifest.json")
    settings = {"shard_size": shard_size, "format": fmt, "dtype": dtype,
                "inputs": hashlib.sha256(inputs_key.encode()).hexdigest()[:16],
                "options": {k: v for k, v in sorted(encode_options.items()) if isinstance(v, (str, int, float, bool))}}
    model_info = {"path": os.fspath(model.path), "fingerprint": model.fingerprint}
    manifest = {"dim": model.hidden_size, "model": model_info, **settings, "shards": [], "skipped": 0,
                "complete": False}

    def check(old: dict) -> None:
        if old["model"]["fingerprint"] != model_info["fingerprint"]:
            raise ValueError(f"{out_dir} holds embeddings of another model ({old['model']['path']}, fingerprint "
                             f"{old['model']['fingerprint']}), not {model_info['path']} ({model_info['fingerprint']})")
        if isinstance(old.get("options"), dict):  # num_threads was recorded before it became a parameter
            old = {**old, "options": {k: v for k, v in old["options"].items() if k != "num_threads"}}
        changed = [k for k in settings if old.get(k) != settings[k]]
        if changed:
            raise ValueError(f"{out_dir} was written with other settings ({', '.join(changed)} differ); "
                             "use another output folder")

    run = uuid.uuid4().hex  # this run's mark: the manifest carries rank 0's, failure notes name it
    startup_error: Optional[Exception] = None
    if rank == 0:
        try:
            if os.path.isfile(manifest_path):
                with open(manifest_path, encoding="utf-8") as f:
                    old = json.load(f)
                check(old)
                manifest = old
            manifest.update(run=run, complete=False)  # a resumed run is complete only when it ends again
            _remove_notes(out_dir)  # an earlier run's failure notes and heartbeats
            _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
        except Exception as e:
            if world == 1:
                raise
            startup_error = e  # told to every rank below, so none waits for this one
    group = _process_group() if world > 1 else None
    if group is not None:
        group.barrier()
        run = _agree_on_start(group, out_dir, manifest_path, check, startup_error)
    elif startup_error is not None:
        raise startup_error
    elif rank != 0:
        while not os.path.isfile(manifest_path):  # rank 0 writes it first (no process group: poll)
            time.sleep(poll_seconds)
        with open(manifest_path, encoding="utf-8") as f:
            seen = json.load(f)
        check(seen)
        run = seen.get("run")
    ext = "npy" if fmt == "npy" else "safetensors"

    def marker(number: int) -> str:
        return os.path.join(out_dir, f"shard-{number:05d}.done.json")

    progress = tqdm(unit="input", desc="unime encode", disable=show_progress is False or rank != 0)

    def flush(records: list[Record], number: int) -> None:
        good = [r for r in records if r.error is None]
        bad = [{"id": r.id, "source": str(r.id), "reason": r.error} for r in records if r.error is not None]
        vectors = np.zeros((0, model.hidden_size), np.float32)
        if good:
            vectors, skipped = model.encode([r.text for r in good], [r.image for r in good],
                                            instruction=[r.instruction for r in good], batch_size=batch_size,
                                            output="numpy", on_error="skip", show_progress=False,
                                            num_threads=num_threads, **encode_options)
            lost = {s.index: s for s in skipped}
            bad += [{"id": good[i].id, "source": s.source, "reason": s.reason} for i, s in sorted(lost.items())]
            keep = [i for i in range(len(good)) if i not in lost]
            vectors, good = vectors[keep], [good[i] for i in keep]
        name = f"shard-{number:05d}"
        _save_shard(os.path.join(out_dir, f"{name}.{ext}"), vectors.astype(dtype), fmt)
        _write_atomic(os.path.join(out_dir, f"{name}.ids.jsonl"),
                      "".join(json.dumps(r.id) + "\n" for r in good).encode())
        entry = {"file": f"{name}.{ext}", "count": len(good), "ids": f"{name}.ids.jsonl"}
        _write_atomic(marker(number), json.dumps({**entry, "skipped": bad}).encode())
        if world == 1:  # the manifest lists finished shards as they come
            manifest["shards"].append(entry)
            manifest["skipped"] += len(bad)
            _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())

    def embed_my_shards() -> int:
        shard: list[Record] = []
        count, number, skip = 0, -1, False
        for record in records:
            if count // shard_size != number:  # a new shard: decided once, not per record
                number = count // shard_size
                skip = number % world != rank or os.path.isfile(marker(number))  # another rank's, or finished
            count += 1
            if skip:
                progress.update(1)
                continue
            shard.append(record)
            if count % shard_size == 0:  # the shard's last input
                flush(shard, number)
                progress.update(len(shard))
                shard = []
        if shard:
            flush(shard, (count - 1) // shard_size)
            progress.update(len(shard))
        progress.close()
        return count

    try:
        if world > 1 and rank != 0:
            with _Heartbeat(out_dir, rank, every=max(0.05, silence_limit / 20)):
                count = embed_my_shards()
        else:
            count = embed_my_shards()
    except Exception as e:
        if world > 1:  # the others wait on files: leave one that tells them
            _write_atomic(_failure_path(out_dir, rank), json.dumps(
                {"run": run, "rank": rank, "host": socket.gethostname(), "error": f"{type(e).__name__}: {e}"}).encode())
        raise
    shards = (count + shard_size - 1) // shard_size
    # The end is awaited on the files, not with a barrier: ranks can finish hours apart (a shard of
    # images on a CPU), far past a process group's timeout.
    if rank == 0:
        missing = [i for i in range(shards) if not os.path.isfile(marker(i))]
        silence = _Silence(out_dir, silence_limit)
        while missing:  # other processes still at work
            _raise_if_another_failed(out_dir)
            silence.check(sorted({i % world for i in missing}))
            time.sleep(poll_seconds)
            missing = [i for i in missing if not os.path.isfile(marker(i))]
        entries = []
        for i in range(shards):
            with open(marker(i), encoding="utf-8") as f:
                entries.append(json.load(f))
        bad = [b for e in entries for b in e.pop("skipped")]
        _write_atomic(os.path.join(out_dir, "skipped.jsonl"), "".join(json.dumps(b) + "\n" for b in bad).encode())
        manifest.update(shards=entries, skipped=len(bad), complete=True, count=sum(e["count"] for e in entries))
        _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
        _remove_notes(out_dir)
        return manifest
    with open(manifest_path, encoding="utf-8") as f:  # as it stands: rank 0 completes it
        return json.load(f)
