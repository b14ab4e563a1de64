"""unime.Index: a vector index for unime embeddings on FAISS.

Scores are inner products. unime's embeddings are L2-normalised, so the inner product is the cosine
similarity; vectors from elsewhere can be normalised on the way in with normalize=True.

Kinds (docs/search.md has the trade-offs and measured numbers):
  flat   exact search (IndexFlatIP behind an IndexIDMap2); deletes remove.
  ivf    IndexIVFFlat, trained k-means lists; approximate, raw vectors kept; deletes remove.
  hnsw   IndexHNSWFlat graph; approximate, no training; deletes are tombstones (see delete()).
  ivfpq  IndexIVFPQ: product-quantised codes (pq_m bytes a vector), for corpora whose raw vectors do
         not fit in memory; approximate scores; cannot be rebuilt without the original vectors.
  auto   flat up to exact_threshold vectors, then converted to ivf (trained on everything held).

User ids (str or int) map to internal int64 labels, handed out in order and never reused, so a
label in FAISS always names one user id for the life of the index (tombstones stay unambiguous).
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

Id = Union[str, int]
KINDS = ("auto", "flat", "ivf", "hnsw", "ivfpq")
FORMAT = "unime-index"
FORMAT_VERSION = 1
# Faiss warns below 39 training points a list; k-means centroids from fewer are poor.
_MIN_POINTS_PER_LIST = 39
_SHARD_SUFFIXES = (".npy", ".safetensors")


@dataclass(frozen=True)
class SearchHit:
    id: Id
    score: float  # inner product (cosine for L2-normalised vectors); approximate for ivfpq
    metadata: Optional[dict]


def _faiss():
    try:
        import faiss
    except ImportError as e:  # faiss is optional for `import unime`; only the index needs it
        raise ImportError("unime.Index needs FAISS: pip install faiss-cpu (or faiss-gpu), or unime[eval]") from e
    return faiss


def default_nlist(n: int) -> int:
    """Inverted lists for n vectors: about 4 sqrt(n), in [1, 65536]."""
    return int(min(65536, max(1, round(4 * math.sqrt(max(n, 1))))))


def default_nprobe(nlist: int) -> int:
    """The starting nprobe, before the index has tuned itself on its own vectors (see Index.tune)."""
    return int(min(nlist, max(16, nlist // 16)))


DEFAULT_EF_SEARCH = 128
# Below this many queries FAISS's flat scan runs one thread per query; a BLAS product is faster.
_FLAT_BLAS_QUERIES = 20
_NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
                 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536)
_EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
TARGET_RECALL = 0.95
# Self-tuning: up to _TUNE_QUERIES rows of an add of at least _TUNE_MIN_BATCH rows are held out of the
# index while it tunes on them as queries (fresh to the index, like real queries), once the index holds
# _TUNE_MIN_COUNT vectors and again each time it doubles. The target has a margin over 0.95 because
# 200 queries estimate recall to about +-0.01.
_TUNE_QUERIES, _TUNE_MIN_BATCH, _TUNE_MIN_COUNT, _SELF_TUNE_TARGET = 200, 50, 1000, 0.965


def default_pq_m(dim: int) -> int:
    """PQ sub-vectors: the largest divisor of dim that is <= dim / 8 (one byte per 8 dimensions)."""
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


class Index:
    """A vector index of unime embeddings with user ids and per-item metadata.

    Index(dim=None, kind="auto", *, model=None, device=None, nlist=None, nprobe=None, hnsw_m=32,
          ef_construction=80, ef_search=None, pq_m=None, pq_bits=8, exact_threshold=50_000)

    dim: inferred from the first add when None. model: an object with .fingerprint, .path and
    .encode(texts, images, instruction=..., output="numpy") (a unime.Model); enables search and add by
    texts / images, and is recorded so that Index.load refuses a different model. device: None / "cpu",
    or "cuda" / "cuda:N" to search on a GPU copy of the index (needs faiss-gpu; flat, ivf, ivfpq).

    nprobe (ivf, ivfpq) and ef_search (hnsw), unless given, tune themselves: on an add of at least 50
    rows once the index holds 1,000 vectors (and each time the count doubles), up to 200 of the new rows
    are held back, searched as queries against exact search over the rest, and then added; the smallest
    value reaching recall@10 >= 0.965 on them is kept. A value given here, set later or found by
    tune(queries) is kept as it is.
    """

    def __init__(self, dim: Optional[int] = None, kind: str = "auto", *, model: Any = None,
                 device: Optional[str] = None, nlist: Optional[int] = None, nprobe: Optional[int] = None,
                 hnsw_m: int = 32, ef_construction: int = 80, ef_search: Optional[int] = None,
                 pq_m: Optional[int] = None, pq_bits: int = 8, exact_threshold: int = 50_000):
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
        if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.requested_kind = kind
        self.kind = "flat" if kind == "auto" else kind  # the structure held now
        self.dim = int(dim) if dim is not None else None
        self.params = {"nlist": nlist, "nprobe": nprobe, "hnsw_m": hnsw_m, "ef_construction": ef_construction,
                       "ef_search": ef_search, "pq_m": pq_m, "pq_bits": pq_bits, "exact_threshold": exact_threshold}
        self._fixed = {name for name in ("nprobe", "ef_search") if self.params[name] is not None}
        self._tuned_at = 0  # count at the last self-tuning
        self._trained_at = 0  # count the ivf lists were sized for
        self.model = None
        self.model_info: Optional[dict] = None  # {"path", "fingerprint"} of the model that embedded the vectors
        if model is not None:
            self._attach_model(model)
        self.device = _check_device(device)
        self._index = None  # the CPU faiss index, the source of truth
        self._gpu = None  # GPU copy for search, dropped on every change
        self._keys: list = []  # label -> user id (None once deleted)
        self._meta: list = []  # label -> metadata dict or None
        self._lookup: dict = {}  # user id -> label
        self._str_ids = 0  # how many live ids are str (raw results are int64 arrays when none)
        self._tombstones: set = set()  # hnsw labels deleted but still in the graph
        self._selector = None
        if self.dim is not None and self.kind in ("flat", "hnsw"):
            self._index = self._new_index(self.kind, self.dim)

    # ----------------------------------------------------------------------------------- building

    @classmethod
    def from_model(cls, model: Any, kind: str = "auto", **options) -> "Index":
        """An empty index for embeddings of `model` (texts and images can then be added and searched)."""
        return cls(kind=kind, model=model, **options)

    def __len__(self) -> int:
        return len(self._lookup)

    def __contains__(self, id: Id) -> bool:
        return _check_id(id, "id") in self._lookup

    def __repr__(self) -> str:
        model = f", model={self.model_info['fingerprint']!r}" if self.model_info else ""
        return f"Index(kind={self.kind!r}, dim={self.dim}, count={len(self)}{model})"

    @property
    def ids(self) -> list:
        """The live ids, in insertion order."""
        return [k for k in self._keys if k is not None]

    def metadata(self, id: Id) -> Optional[dict]:
        return self._meta[self._label(id)]

    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    @property
    def nlist(self) -> Optional[int]:
        ivf = self._ivf()
        return int(ivf.nlist) if ivf is not None else None

    @property
    def nprobe(self) -> Optional[int]:
        ivf = self._ivf()
        if ivf is None:
            return self.params["nprobe"]
        return int(self.params["nprobe"] or default_nprobe(ivf.nlist))

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.params["nprobe"] = _positive_int(value, "nprobe")
        self._fixed.add("nprobe")

    @property
    def ef_search(self) -> int:
        return int(self.params["ef_search"] or DEFAULT_EF_SEARCH)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.params["ef_search"] = _positive_int(value, "ef_search")
        self._fixed.add("ef_search")

    def train(self, vectors: Any, *, normalize: bool = False, expected_count: Optional[int] = None) -> None:
        """Trains an ivf / ivfpq index on a sample before any add. nlist (unless given) comes from
        expected_count (the corpus size) or the sample size, capped so each list has 39 sample points."""
        x = self._as_matrix(vectors, "vectors", normalize)
        if self.kind not in ("ivf", "ivfpq"):
            raise ValueError(f"train() is for kind 'ivf' or 'ivfpq'; this index is {self.kind!r}")
        if self._index is not None and self._index.ntotal > 0:
            raise ValueError("the index already holds vectors; train before the first add, or call rebuild()")
        self._index = self._new_index(self.kind, self.dim, train=x, expected_count=expected_count)
        self._gpu = None

    def add(self, vectors: Any = None, ids: Optional[Sequence[Id]] = None,
            metadata: Optional[Sequence[Optional[dict]]] = None, *, texts: Any = None, images: Any = None,
            instruction: Any = None, batch_size: int = 8, normalize: bool = False) -> list:
        """Adds vectors (N, D) (numpy or torch), or texts / images embedded by the index's model.

        ids: one str or int each (default: running integers from the number of labels handed out);
        metadata: one JSON-able dict (or None) each. Returns the ids added. All checks (dim, NaN, ids,
        metadata) run before anything is added, so a refused call changes nothing.
        """
        if texts is not None or images is not None:
            if vectors is not None:
                raise ValueError("add: give vectors, or texts / images, not both")
            n = _count_inputs(texts, images)
            keys, metas = self._check_items(n, ids, metadata)  # before the (slow) embedding
            vectors = self._embed(texts, images, instruction, batch_size)
        elif vectors is None:
            raise ValueError("add: give vectors, or texts / images with a model")
        x = self._as_matrix(vectors, "vectors", normalize)
        if texts is None and images is None:
            keys, metas = self._check_items(len(x), ids, metadata)
        if not len(x) and not keys:
            return []
        elif len(x) != len(keys):
            raise ValueError(f"add: the model returned {len(x)} embeddings for {len(keys)} inputs")
        self._add_checked(x, keys, metas)
        if self.requested_kind == "auto" and (
                (self.kind == "flat" and len(self) > self.params["exact_threshold"])
                or (self.kind == "ivf" and len(self) > 4 * self._trained_at)):
            # Grown past exact search, or to 4x the size the lists were trained for (nlist ~ 4 sqrt(n)
            # should double): train lists on everything held. Geometric, so amortised O(1) per vector.
            self.rebuild("ivf")
        return keys

    def delete(self, ids: Union[Id, Sequence[Id]], *, missing: str = "error") -> int:
        """Deletes ids (one or a list); returns how many were deleted. missing: "error" (KeyError naming
        the id) or "ignore". flat / ivf / ivfpq remove the vectors. hnsw cannot remove from its graph:
        deleted vectors become tombstones that stay in the graph (still routing searches) and are
        filtered inside FAISS's search, so k live results still come back; compact() rebuilds without
        them."""
        if missing not in ("error", "ignore"):
            raise ValueError(f"missing must be 'error' or 'ignore', got {missing!r}")
        keys = [ids] if isinstance(ids, (str, int, np.integer)) else list(ids)
        labels: dict = {}  # label -> None: unique, in order
        for key in keys:
            key = _check_id(key, "ids")
            label = self._lookup.get(key)
            if label is None:
                if missing == "error":
                    raise KeyError(f"delete: id {key!r} is not in the index")
                continue
            labels[label] = None
        if not labels:
            return 0
        arr = np.fromiter(labels, np.int64, len(labels))
        if self.kind == "hnsw":
            self._tombstones.update(labels)
            self._selector = None
        else:
            self._index.remove_ids(arr)
        for label in labels:
            self._str_ids -= isinstance(self._keys[label], str)
            del self._lookup[self._keys[label]]
            self._keys[label] = None
            self._meta[label] = None
        self._gpu = None
        return len(labels)

    def rebuild(self, kind: Optional[str] = None, **params) -> None:
        """Rebuilds from the vectors held (flat, ivf, hnsw; ivfpq keeps only codes): retrains ivf lists
        for the current size (nlist from the count unless given), drops hnsw tombstones, or changes
        kind. Needs memory for a second copy of the vectors while it runs."""
        kind = kind or self.kind
        if kind not in KINDS or kind == "auto":
            raise ValueError(f"rebuild: unknown index kind {kind!r}; expected flat, ivf, hnsw or ivfpq")
        if self.kind == "ivfpq":
            raise ValueError("rebuild: an ivfpq index keeps only compressed codes, not the vectors; build a new "
                             "index from the original vectors (Index.from_shards)")
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(f"rebuild: unknown parameters {sorted(unknown)}")
        self.params.update(params)  # nlist None (the default) sizes the lists from the current count
        if self._index is None:
            self.kind = kind
            return
        x, labels = self._extract()
        self.kind = kind
        if kind not in ("ivf", "ivfpq"):
            self._index = self._new_index(kind, self.dim)
        else:  # nothing left to train on: the next add trains
            self._index = self._new_index(kind, self.dim, train=x) if len(x) else None
        self._tombstones.clear()
        self._selector = None
        self._gpu = None
        if len(x):
            self._faiss_add(x, labels)

    def compact(self) -> None:
        """hnsw: rebuilds the graph without tombstones (a full build). Other kinds: nothing to do."""
        if self.kind == "hnsw" and self._tombstones:
            self.rebuild("hnsw")

    # ------------------------------------------------------------------------------------ search

    def search(self, vectors: Any = None, k: int = 10, *, texts: Any = None, images: Any = None,
               instruction: Any = None, batch_size: int = 8, normalize: bool = False, output: str = "hits"):
        """Top-k by inner product for queries (Q, D) or (D,), or texts / images embedded by the model.

        output="hits": a list (one per query) of SearchHit(id, score, metadata), best first, fewer than
        k when the index holds fewer live vectors. output="arrays": (ids, scores), both (Q, k): ids an
        int64 array when every id is an int (else an object array), padded with -1, scores float32
        padded with NaN.
        """
        if output not in ("hits", "arrays"):
            raise ValueError(f"output must be 'hits' or 'arrays', got {output!r}")
        k = _positive_int(k, "k")
        if texts is not None or images is not None:
            if vectors is not None:
                raise ValueError("search: give vectors, or texts / images, not both")
            vectors = self._embed(texts, images, instruction, batch_size)
        elif vectors is None:
            raise ValueError("search: give query vectors, or texts / images with a model")
        q = self._as_matrix(vectors, "queries", normalize, adopt_dim=False)
        labels, scores = self._search_labels(q, k)
        if output == "arrays":
            return self._label_keys(labels), scores
        return [[SearchHit(self._keys[lab], float(s), self._meta[lab]) for lab, s in zip(row_l, row_s) if lab >= 0]
                for row_l, row_s in zip(labels.tolist(), scores.tolist())]

    def _search_labels(self, q: np.ndarray, k: int) -> tuple:
        """FAISS search on checked float32 queries: (labels int64, scores float32), -1 / NaN padded."""
        if self._index is None or self._index.ntotal == 0 or not self._index.is_trained:
            return np.full((len(q), k), -1, np.int64), np.full((len(q), k), np.nan, np.float32)
        faiss = _faiss()
        index, params = self._index, None
        if self.kind == "flat" and self.device is None and len(q) < _FLAT_BLAS_QUERIES:
            return self._flat_blas_search(q, k)
        if self.kind in ("ivf", "ivfpq"):
            params = faiss.SearchParametersIVF(nprobe=min(self.nprobe, self.nlist))
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            if self._tombstones:
                params.sel = self._tombstone_selector()
        if self.device is not None:
            index = self._gpu_index()
            if params is not None and self.kind != "hnsw":
                faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", params.nprobe)
                params = None
        scores, labels = index.search(q, k, params=params)
        scores = scores.astype(np.float32, copy=False)
        scores[labels < 0] = np.nan
        return labels, scores

    def tune(self, queries: Any, *, k: int = 10, target_recall: float = TARGET_RECALL,
             normalize: bool = False) -> dict:
        """Sets the smallest nprobe (ivf, ivfpq) or ef_search (hnsw) whose recall@k on `queries` (a
        sample of real queries) reaches target_recall against exact search: ivf probing every list
        (exact), hnsw brute force over the stored vectors, ivfpq every list over the same codes (the best
        this compression gives). The value is then kept (no more self-tuning). Returns
        {"nprobe" or "ef_search": value, "recall": recall at that value}; {} for flat."""
        q = self._as_matrix(queries, "queries", normalize, adopt_dim=False)
        out = self._tune(q, _positive_int(k, "k"), target_recall)
        self._fixed.update(name for name in out if name != "recall")
        return out

    def _tune(self, q: np.ndarray, k: int, target: float) -> dict:
        if self.kind not in ("ivf", "ivfpq", "hnsw") or self._index is None or self._index.ntotal == 0 or not len(q):
            return {}
        if self.kind == "hnsw":
            name, steps = "ef_search", _EF_STEPS
            x, labels = self._extract()
            truth = labels[_exact_topk(q, x, k)]
        else:
            name, steps = "nprobe", sorted({v for v in _NPROBE_STEPS if v < self.nlist} | {self.nlist})
            self.params["nprobe"] = self.nlist
            truth = self._search_labels(q, k)[0]
        for value in steps:
            self.params[name] = value
            recall = _recall(self._search_labels(q, k)[0], truth)
            if recall >= target:
                break
        return {name: value, "recall": recall}

    def _flat_blas_search(self, q: np.ndarray, k: int) -> tuple:
        """Exact search for a few queries as one BLAS product over FAISS's own storage (no copy).
        FAISS scans below 20 queries with one thread per query, so a single query uses one core; the
        product uses them all (benchmarks/bench_index.py). Same results as FAISS up to float rounding."""
        faiss = _faiss()
        n, d = self._index.ntotal, self.dim
        flat = faiss.downcast_index(self._index.index)
        xb = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)  # views, valid until the next change
        id_map = faiss.rev_swig_ptr(self._index.id_map.data(), n)
        scores = q @ xb.T  # (Q, n)
        kk = min(k, n)
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n else np.broadcast_to(np.arange(n), (len(q), n))
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        labels = np.full((len(q), k), -1, np.int64)
        out = np.full((len(q), k), np.nan, np.float32)
        labels[:, :kk] = id_map[np.take_along_axis(top, order, 1)]
        out[:, :kk] = np.take_along_axis(top_scores, order, 1)
        return labels, out

    def _tune_holdout(self, n: int) -> Optional[np.ndarray]:
        """Positions among n rows about to be added to hold out as self-tuning queries, or None."""
        name = "ef_search" if self.kind == "hnsw" else "nprobe"
        total = self._index.ntotal - len(self._tombstones) + n
        if (self.kind not in ("ivf", "ivfpq", "hnsw") or name in self._fixed or n < _TUNE_MIN_BATCH
                or total < max(_TUNE_MIN_COUNT, 2 * self._tuned_at)):
            return None
        return np.sort(np.random.default_rng(total).choice(n, min(_TUNE_QUERIES, n // 2), replace=False))

    def _faiss_add(self, x: np.ndarray, labels: np.ndarray, tune: bool = True) -> None:
        """Adds to FAISS; when self-tuning is due, tunes on held-out rows first and adds them after."""
        held = self._tune_holdout(len(x)) if tune else None
        if held is None:
            self._index.add_with_ids(x, labels)
        else:
            # The rows between held-back ones, as views: no copy of x (it may be the whole corpus).
            bounds = np.concatenate([[-1], held, [len(x)]])
            for a, b in zip(bounds[:-1] + 1, bounds[1:]):
                if b > a:
                    self._index.add_with_ids(x[a:b], labels[a:b])
            self._tune(np.ascontiguousarray(x[held]), 10, _SELF_TUNE_TARGET)
            self._index.add_with_ids(np.ascontiguousarray(x[held]), labels[held])
            self._tuned_at = self._index.ntotal - len(self._tombstones)
        self._gpu = None

    # ----------------------------------------------------------------------------- save and load

    def save(self, directory: Union[str, os.PathLike]) -> Path:
        """Writes the index to a directory: the FAISS index, labels (.npy), ids and metadata (.jsonl,
        one line per live item) and manifest.json. Data files get fresh names per save and the manifest
        (which names them) is replaced last by an atomic rename, so a crash at any point leaves the
        previous save loadable; the previous save's files are deleted after the switch."""
        faiss = _faiss()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        old = _read_manifest(d) if (d / "manifest.json").exists() else None
        gen = int(old.get("generation", 0)) + 1 if old else 1
        files = {"index": f"index-{gen}.faiss", "labels": f"labels-{gen}.npy", "ids": f"ids-{gen}.jsonl",
                 "metadata": f"metadata-{gen}.jsonl"}
        live = np.asarray([lab for lab, key in enumerate(self._keys) if key is not None], dtype=np.int64)
        writers = {"labels": lambda p: _save_npy(p, live),
                   "ids": lambda p: _write_jsonl(p, (self._keys[i] for i in live)),
                   "metadata": lambda p: _write_jsonl(p, (self._meta[i] for i in live))}
        if self._index is not None:
            writers["index"] = lambda p: faiss.write_index(self._index, str(p))
        else:
            del files["index"]
        if self._tombstones:
            files["tombstones"] = f"tombstones-{gen}.npy"
            dead = np.sort(np.fromiter(self._tombstones, np.int64, len(self._tombstones)))
            writers["tombstones"] = lambda p: _save_npy(p, dead)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "generation": gen, "dim": self.dim,
            "kind": self.kind, "requested_kind": self.requested_kind, "count": len(self),
            "next_label": len(self._keys), "nlist": self.nlist, "params": self.params, "model": self.model_info,
            "fixed": sorted(self._fixed), "tuned_at": self._tuned_at, "trained_at": self._trained_at,
            "unime_version": _unime_version(), "faiss_version": faiss.__version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files,
        }
        text = json.dumps(manifest, indent=2) + "\n"
        try:
            for role, write in writers.items():
                _atomic_write(d / files[role], write)
            _atomic_write(d / "manifest.json", lambda p: p.write_text(text))  # the commit point
        except BaseException:
            for name in files.values():  # this generation's files; the old manifest still names the old ones
                if not old or name not in old.get("files", {}).values():
                    (d / name).unlink(missing_ok=True)
            raise
        if old:
            for name in set(old.get("files", {}).values()) - set(files.values()):
                if "/" not in name and (d / name).is_file():
                    (d / name).unlink()
        return d

    @classmethod
    def load(cls, directory: Union[str, os.PathLike], model: Any = None, *, device: Optional[str] = None) -> "Index":
        """Loads a saved index. With model=, refuses (ValueError) an index embedded by a different model
        (fingerprints differ) and attaches the model for search by texts / images."""
        d = Path(directory)
        m = _read_manifest(d)
        recorded = m.get("model")
        if model is not None and recorded and recorded.get("fingerprint") != getattr(model, "fingerprint", None):
            raise ValueError(
                f"{d}: this index holds embeddings of model {recorded.get('path')} (fingerprint "
                f"{recorded.get('fingerprint')}), but the given model is {getattr(model, 'path', None)} "
                f"(fingerprint {getattr(model, 'fingerprint', None)}); embeddings of different models are not "
                "comparable: load the matching model or re-embed the corpus")
        index = cls(m["dim"], m["requested_kind"], device=device, **m["params"])
        index.kind = m["kind"]
        index._fixed, index._tuned_at = set(m.get("fixed", [])), int(m.get("tuned_at", 0))
        index._trained_at = int(m.get("trained_at", 0))
        index.model_info = recorded
        if model is not None:
            index._attach_model(model)
        files = m["files"]
        for role, name in files.items():
            if not (d / name).is_file():
                raise FileNotFoundError(f"{d}: manifest.json names {role} file {name}, which is missing")
        labels = np.load(d / files["labels"])
        keys, metas = _read_jsonl(d / files["ids"]), _read_jsonl(d / files["metadata"])
        if not (len(labels) == len(keys) == len(metas) == m["count"]):
            raise ValueError(f"{d}: manifest count {m['count']} but {len(labels)} labels, {len(keys)} ids, "
                             f"{len(metas)} metadata lines")
        n_labels = max(int(m.get("next_label", 0)), int(labels.max()) + 1 if len(labels) else 0)
        index._keys, index._meta = [None] * n_labels, [None] * n_labels
        for row, (label, key, meta) in enumerate(zip(labels.tolist(), keys, metas)):
            key = _check_id(key, f"{files['ids']} line {row + 1}")
            if key in index._lookup:
                raise ValueError(f"{d}: duplicate id {key!r} in {files['ids']}")
            index._keys[label], index._meta[label], index._lookup[key] = key, meta, label
            index._str_ids += isinstance(key, str)
        if "tombstones" in files:
            index._tombstones = set(np.load(d / files["tombstones"]).tolist())
        if "index" in files:
            index._index = _faiss().read_index(str(d / files["index"]))
            if index._index.d != m["dim"]:
                raise ValueError(f"{d}: {files['index']} has dim {index._index.d}, manifest.json says {m['dim']}")
            if index._index.ntotal != m["count"] + len(index._tombstones):
                raise ValueError(f"{d}: {files['index']} holds {index._index.ntotal} vectors, manifest.json "
                                 f"says {m['count']} (+{len(index._tombstones)} tombstones)")
        elif m["count"]:
            raise ValueError(f"{d}: manifest.json counts {m['count']} vectors but names no index file")
        return index

    # ---------------------------------------------------------------------------------- shards

    @classmethod
    def from_shards(cls, source: Any, kind: str = "auto", *, ids: Optional[Sequence[Id]] = None, model: Any = None,
                    train_size: Optional[int] = None, chunk_rows: Optional[int] = None, seed: int = 0,
                    **options) -> "Index":
        """Builds an index from embedding shards on disk, streaming them chunk by chunk.

        source: a folder holding manifest.json, a manifest path, or a list of .npy / .safetensors shard
        paths (safetensors key "embeddings"). ids: overrides the manifest's ids (one per row of all
        shards); default the manifest's id files, else running integer positions. ivf / ivfpq train on a
        random sample of train_size rows (default min(n, max(39 nlist, 10000), 262144)), read in a first
        pass. Peak memory: the index itself plus the training sample (twice, for residuals) plus one
        chunk (8 MiB by default); mapped pages are not used, so the shards never count against the process.
        """
        shards, info = _open_shards(source)
        total = sum(s.rows for s in shards)
        dim = info["dim"]
        if total == 0:
            raise ValueError(f"from_shards: {info['where']}: the shards hold no rows")
        if ids is not None and len(ids) != total:
            raise ValueError(f"from_shards: {len(ids)} ids for {total} rows in the shards")
        index = cls(dim, kind, **options)
        if kind == "auto" and total > index.params["exact_threshold"]:
            index.kind = "ivf"  # the size is known up front: no flat stage
        if info.get("model"):
            index.model_info = {"path": info["model"].get("path"), "fingerprint": info["model"].get("fingerprint")}
        if model is not None:
            fp = (index.model_info or {}).get("fingerprint")
            if fp is not None and fp != getattr(model, "fingerprint", None):
                raise ValueError(f"{info['where']}: the shards are embeddings of model {index.model_info['path']} "
                                 f"(fingerprint {fp}), but the given model is {getattr(model, 'path', None)} "
                                 f"(fingerprint {getattr(model, 'fingerprint', None)})")
            index._attach_model(model)
        chunk_rows = chunk_rows or max(1, (8 << 20) // (4 * dim))  # 8 MiB of float32 a read
        if index.kind in ("ivf", "ivfpq"):
            nlist = options.get("nlist") or default_nlist(total)
            want = train_size or min(total, max(_MIN_POINTS_PER_LIST * nlist, 10_000), 262_144)
            if want > total:
                raise ValueError(f"from_shards: train_size {want} is more than the {total} rows in the shards")
            rows = np.sort(np.random.default_rng(seed).choice(total, size=want, replace=False))
            sample = _gather_rows(shards, rows, chunk_rows)
            index.train(sample, expected_count=total)
            del sample
        position, held = 0, ([], [])
        # Self-tuning queries: random rows of the whole corpus, added after the tuning.
        holdout = index._tune_holdout(total) if index._index is not None else None
        for shard in shards:
            shard_ids = shard.ids() if ids is None else None
            shard_meta = shard.metadata()
            for start, x in shard.chunks(chunk_rows):
                stop = start + len(x)
                if ids is not None:
                    keys = ids[position + start:position + stop]
                elif shard_ids is not None:
                    keys = shard_ids[start:stop]
                else:
                    keys = range(position + start, position + stop)
                metas = shard_meta[start:stop] if shard_meta is not None else None
                keys, metas = index._check_items(len(x), keys, metas, where=f"{shard.path} rows {start}..{stop - 1}")
                labels = index._register(keys, metas)
                defer = np.zeros(len(x), bool) if holdout is None else \
                    np.isin(np.arange(position + start, position + stop), holdout)
                index._index.add_with_ids(np.ascontiguousarray(x[~defer]), labels[~defer])
                held[0].append(x[defer])
                held[1].append(labels[defer])
            position += shard.rows
        if holdout is not None:
            x, labels = np.concatenate(held[0]), np.concatenate(held[1])
            index._tune(x, 10, _SELF_TUNE_TARGET)
            index._index.add_with_ids(x, labels)
            index._tuned_at = total
        return index

    # -------------------------------------------------------------------------------- internals

    def _attach_model(self, model: Any) -> None:
        fingerprint, path = getattr(model, "fingerprint", None), getattr(model, "path", None)
        if not isinstance(fingerprint, str) or not hasattr(model, "encode"):
            raise TypeError(f"model must have a str .fingerprint, a .path and .encode(); got {type(model).__name__}")
        self.model = model
        self.model_info = {"path": os.fspath(path) if path is not None else None, "fingerprint": fingerprint}

    def _embed(self, texts: Any, images: Any, instruction: Any, batch_size: int) -> np.ndarray:
        if self.model is None:
            raise ValueError("this index has no model to embed texts / images: build it with Index(model=...) or "
                             "Index.from_model(model), or pass model= to Index.load; or give vectors")
        out = self.model.encode(texts, images, instruction=instruction, batch_size=batch_size, output="numpy")
        return np.asarray(out)

    def _as_matrix(self, vectors: Any, name: str, normalize: bool, adopt_dim: bool = True) -> np.ndarray:
        """(N, D) float32 C-contiguous, finite, dim checked (the index adopts D on the first call)."""
        if hasattr(vectors, "detach") and hasattr(vectors, "cpu"):  # torch.Tensor, without importing torch
            vectors = vectors.detach().cpu().float().numpy()
        x = np.asarray(vectors)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a float array or tensor, got dtype {x.dtype}")
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"{name} must have shape (N, D) or (D,), got shape {x.shape}")
        if self.dim is None and adopt_dim:
            if x.shape[1] < 1:
                raise ValueError(f"{name} has dimension 0")
            self.dim = int(x.shape[1])
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"{name} have dimension {x.shape[1]}, but the index holds dimension {self.dim}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{name} row {row} contains NaN or infinite values")
        if normalize:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if (norms == 0).any():
                raise ValueError(f"{name} row {int(np.argmax(norms[:, 0] == 0))} is all zeros; cannot normalize")
            x = x / norms
        return x

    def _check_items(self, n: int, ids: Any, metadata: Any, where: str = "add") -> tuple:
        """Checks ids (unique, str / int, not already present) and metadata (JSON-able dicts) for n items."""
        if ids is None:
            keys = list(range(len(self._keys), len(self._keys) + n))
        else:
            if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
                raise TypeError(f"{where}: ids must be a sequence of str or int (one per item), "
                                f"got {type(ids).__name__}")
            if len(ids) != n:
                raise ValueError(f"{where}: {len(ids)} ids for {n} items")
            keys = [_check_id(key, f"{where}: ids[{i}]") for i, key in enumerate(ids)]
        seen: dict = {}
        for i, key in enumerate(keys):
            if key in self._lookup:
                raise ValueError(f"{where}: duplicate id {key!r} (ids[{i}]) is already in the index")
            if key in seen:
                raise ValueError(f"{where}: duplicate id {key!r} at ids[{seen[key]}] and ids[{i}]")
            seen[key] = i
        if metadata is None:
            metas = [None] * n
        else:
            if isinstance(metadata, dict) or not hasattr(metadata, "__len__"):
                raise TypeError(f"{where}: metadata must be a sequence of dicts (one per item), "
                                f"got {type(metadata).__name__}")
            if len(metadata) != n:
                raise ValueError(f"{where}: {len(metadata)} metadata entries for {n} items")
            metas = list(metadata)
            for i, meta in enumerate(metas):
                if meta is None:
                    continue
                if not isinstance(meta, dict):
                    raise TypeError(f"{where}: metadata[{i}] must be a dict or None, got {type(meta).__name__}")
                try:
                    json.dumps(meta, allow_nan=False)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{where}: metadata[{i}] is not JSON-serialisable: {e}") from None
        return keys, metas

    def _add_checked(self, x: np.ndarray, keys: list, metas: list) -> None:
        if self._index is None:
            self._index = self._new_index(self.kind, self.dim, train=x if self.kind in ("ivf", "ivfpq") else None)
        self._faiss_add(x, self._register(keys, metas))

    def _register(self, keys: list, metas: list) -> np.ndarray:
        """Hands out the next labels to checked keys; returns them (int64)."""
        start = len(self._keys)
        self._keys.extend(keys)
        self._meta.extend(metas)
        self._lookup.update(zip(keys, range(start, start + len(keys))))
        self._str_ids += sum(isinstance(key, str) for key in keys)
        return np.arange(start, start + len(keys), dtype=np.int64)

    def _new_index(self, kind: str, dim: int, train: Optional[np.ndarray] = None,
                   expected_count: Optional[int] = None):
        faiss = _faiss()
        p = self.params
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dim, p["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = p["ef_construction"]
            if "ef_search" not in self._fixed:
                self.params["ef_search"], self._tuned_at = None, 0
            return faiss.IndexIDMap(hnsw)
        n = len(train)
        nlist = p["nlist"] or min(default_nlist(max(n, expected_count or 0)), max(1, n // _MIN_POINTS_PER_LIST))
        if nlist > n:
            raise ValueError(f"{kind}: nlist {nlist} needs at least {nlist} training vectors, got {n}")
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            m = p["pq_m"] or default_pq_m(dim)
            if dim % m:
                raise ValueError(f"ivfpq: pq_m {m} must divide dim {dim}")
            if n < 2 ** p["pq_bits"]:
                raise ValueError(f"ivfpq needs at least {2 ** p['pq_bits']} training vectors, got {n}: add more "
                                 "at once, call train() with a larger sample, or use kind 'flat' or 'hnsw'")
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, p["pq_bits"], faiss.METRIC_INNER_PRODUCT)
            index.pq.cp.min_points_per_centroid = 1  # from_shards samples >= 10,000 by default
        index.cp.min_points_per_centroid = 1  # sized above; no warning spam for small samples
        index.train(train)
        self._trained_at = max(n, expected_count or 0)
        index.nprobe = min(self.params["nprobe"] or default_nprobe(nlist), nlist)
        if "nprobe" not in self._fixed:
            self.params["nprobe"] = None  # new lists: start from the default until tuned again
            self._tuned_at = 0
        return index

    def _ivf(self):
        if self._index is None or self.kind not in ("ivf", "ivfpq"):
            return None
        return _faiss().extract_index_ivf(self._index)

    def _extract(self) -> tuple:
        """All live vectors (n, D) float32 and their labels, from flat, ivf or hnsw storage."""
        faiss = _faiss()
        idx = self._index
        if self.kind in ("flat", "hnsw"):
            labels = faiss.vector_to_array(idx.id_map).astype(np.int64)
            x = idx.index.reconstruct_n(0, idx.ntotal) if idx.ntotal else np.zeros((0, self.dim), np.float32)
            if self._tombstones:
                keep = ~np.isin(labels, np.fromiter(self._tombstones, np.int64))
                x, labels = x[keep], labels[keep]
            return x, labels
        inv = idx.invlists  # IVFFlat lists hold raw float32 rows
        xs, ls = [], []
        for lst in range(idx.nlist):
            size = inv.list_size(lst)
            if size:
                ls.append(faiss.rev_swig_ptr(inv.get_ids(lst), size).copy())
                xs.append(faiss.rev_swig_ptr(inv.get_codes(lst), size * inv.code_size).view(np.float32)
                          .reshape(size, self.dim).copy())
        if not ls:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64)
        labels, x = np.concatenate(ls), np.concatenate(xs)
        order = np.argsort(labels)
        return x[order], labels[order]

    def _tombstone_selector(self):
        if self._selector is None:
            faiss = _faiss()
            batch = faiss.IDSelectorBatch(np.fromiter(self._tombstones, np.int64, len(self._tombstones)))
            self._selector = (faiss.IDSelectorNot(batch), batch)  # keep the inner selector alive
        return self._selector[0]

    def _gpu_index(self):
        if self._gpu is None:
            faiss = _faiss()
            if self.kind == "hnsw":
                raise ValueError("hnsw indexes search on the CPU; FAISS's GPU build has no HNSW (use flat or ivf)")
            gpu = 0 if self.device == "cuda" else int(self.device.split(":")[1])
            self._gpu_resources = getattr(self, "_gpu_resources", None) or faiss.StandardGpuResources()
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, gpu, self._index)
        return self._gpu

    def _label(self, id: Id) -> int:
        key = _check_id(id, "id")
        if key not in self._lookup:
            raise KeyError(f"id {key!r} is not in the index")
        return self._lookup[key]

    def _label_keys(self, labels: np.ndarray) -> np.ndarray:
        out = np.full(labels.shape, -1, dtype=object if self._str_ids else np.int64)
        valid = labels >= 0
        out[valid] = [self._keys[lab] for lab in labels[valid].tolist()]
        return out


# ---------------------------------------------------------------------------------------- helpers


def _check_id(key: Any, where: str) -> Id:
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"{where}: ids must be str or int, got bool {key!r}")
    if isinstance(key, (int, np.integer)):
        return int(key)
    if isinstance(key, str):
        return str(key)
    raise TypeError(f"{where}: ids must be str or int, got {type(key).__name__} {key!r}")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_device(device: Optional[str]) -> Optional[str]:
    if device is None or device == "cpu":
        return None
    if not isinstance(device, str) or not (device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    faiss = _faiss()
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        raise ValueError(f"device={device!r}: this FAISS build has no GPU support or sees no GPU "
                         "(install faiss-gpu, or use device=None)")
    return device


def _count_inputs(texts: Any, images: Any) -> int:
    def count(x):
        return 1 if isinstance(x, (str, dict)) or not isinstance(x, (list, tuple)) else len(x)
    if texts is not None and images is not None and count(texts) != count(images):
        raise ValueError(f"add: {count(texts)} texts but {count(images)} images (texts[i] pairs with images[i])")
    return count(texts) if texts is not None else count(images)


def _exact_topk(q: np.ndarray, x: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Row positions of the k largest inner products, by brute force over blocks of the corpus."""
    best_s, best_i = np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
    for start in range(0, len(x), block):
        s = q @ x[start:start + block].T
        i = np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)
        s, i = np.concatenate([best_s, s], 1), np.concatenate([best_i, i], 1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def _unime_version() -> str:
    try:
        from . import _C
        return _C.__version__
    except Exception:  # the index file format does not depend on the core being importable
        from importlib.metadata import version
        return version("unime")


# ----------------------------------------------------------------------------------------- files


def _atomic_write(path: Path, write) -> None:
    """write(tmp) then fsync and rename over path: readers see the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to the temporary name
        np.save(f, array)


def _write_jsonl(path: Path, values) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for v in values:
            f.write(json.dumps(v, ensure_ascii=False, allow_nan=False) + "\n")


def _read_jsonl(path: Path) -> list:
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {line_no}: not JSON ({e.msg})") from None
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg})") from None


def _read_manifest(d: Path) -> dict:
    path = d / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{d}: no manifest.json (not a saved unime.Index)")
    m = _read_json(path)
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        found = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise ValueError(f"{path}: not a unime.Index manifest (format {found!r}, expected {FORMAT!r})")
    if m.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {m.get('format_version')} is not supported by this unime "
                         f"(reads {FORMAT_VERSION})")
    for key in ("dim", "kind", "requested_kind", "count", "params", "files"):
        if key not in m:
            raise ValueError(f"{path}: missing key {key!r}")
    if m["kind"] not in KINDS or m["requested_kind"] not in KINDS:
        raise ValueError(f"{path}: unknown kind {m['kind']!r}")
    return m


# ---------------------------------------------------------------------------------------- shards

_NP_DTYPES = {"<f4": np.float32, "<f2": np.float16, "<f8": np.float64}
_ST_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "F64": (np.float64, 8), "BF16": (np.uint16, 2)}


class _Shard:
    """One (rows, dim) embedding matrix in a .npy or .safetensors file, read with plain file reads.
    Mapped pages are avoided on purpose: touched pages of a mapping count in the process's RSS until it
    is unmapped, so streaming a large mmap would grow the process by the shard's size."""

    def __init__(self, path: Path, ids_path: Optional[Path] = None, meta_path: Optional[Path] = None):
        self.path, self.ids_path, self.meta_path = path, ids_path, meta_path
        if not path.is_file():
            raise FileNotFoundError(f"shard {path} does not exist")
        size = path.stat().st_size
        self.bf16 = False
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                try:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, fortran, dtype = read(f)
                except ValueError as e:
                    raise ValueError(f"shard {path}: not a .npy file ({e})") from None
                self.offset = f.tell()
            if dtype.str not in _NP_DTYPES or fortran:
                raise ValueError(f"shard {path}: expected a C-order float32/float16/float64 array, got "
                                 f"{dtype}{' (Fortran order)' if fortran else ''}")
            self.dtype = np.dtype(_NP_DTYPES[dtype.str])
        elif path.suffix == ".safetensors":
            shape = self._safetensors_header(path, size)
        else:
            raise ValueError(f"shard {path}: expected a .npy or .safetensors file")
        if len(shape) != 2:
            raise ValueError(f"shard {path}: expected a 2-d (rows, dim) array, got shape {tuple(shape)}")
        self.rows, self.dim = int(shape[0]), int(shape[1])
        if self.offset + self.rows * self.dim * self.dtype.itemsize > size:
            raise ValueError(f"shard {path}: truncated ({size} bytes, header says {tuple(shape)} {self.dtype})")

    def _safetensors_header(self, path: Path, size: int) -> list:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"shard {path}: truncated safetensors header")
            n = struct.unpack("<Q", head)[0]
            if n > min(size - 8, 100 << 20):
                raise ValueError(f"shard {path}: safetensors header length {n} is past the end of the file")
            try:
                header = json.loads(f.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"shard {path}: safetensors header is not JSON ({e})") from None
        entry = header.get("embeddings") if isinstance(header, dict) else None
        if not isinstance(entry, dict):
            names = [k for k in header if k != "__metadata__"] if isinstance(header, dict) else []
            raise KeyError(f"shard {path}: no tensor 'embeddings' (has {names})")
        if entry.get("dtype") not in _ST_DTYPES:
            raise ValueError(f"shard {path}: 'embeddings' has dtype {entry.get('dtype')}; expected F32, F16, BF16, F64")
        dtype, itemsize = _ST_DTYPES[entry["dtype"]]
        self.dtype, self.bf16 = np.dtype(dtype), entry["dtype"] == "BF16"
        shape, (start, end) = entry.get("shape", []), entry.get("data_offsets", (0, -1))
        if end - start != int(np.prod(shape)) * itemsize:
            raise ValueError(f"shard {path}: 'embeddings' data_offsets {start}..{end} do not match shape {shape}")
        self.offset = 8 + n + start
        return shape

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as float32 (rows, dim)."""
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.dim * self.dtype.itemsize)
            x = np.fromfile(f, dtype=self.dtype, count=(stop - start) * self.dim).reshape(-1, self.dim)
        if len(x) != stop - start:
            raise ValueError(f"shard {self.path}: truncated at row {start + len(x)}")
        if self.bf16:
            x = (x.astype(np.uint32) << 16).view(np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise ValueError(f"shard {self.path}: row {start + int(np.argmax(bad))} contains NaN or infinite values")
        return x

    def chunks(self, rows: int) -> Iterator[tuple]:
        for start in range(0, self.rows, rows):
            yield start, self.read(start, min(self.rows, start + rows))

    def ids(self) -> Optional[list]:
        return _read_side_file(self.ids_path, self.rows, self.path, "ids")

    def metadata(self) -> Optional[list]:
        return _read_side_file(self.meta_path, self.rows, self.path, "metadata")


def _read_side_file(path: Optional[Path], rows: int, shard: Path, what: str) -> Optional[list]:
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} of shard {shard} does not exist")
    values = np.load(path).tolist() if path.suffix == ".npy" else _read_jsonl(path)
    if len(values) != rows:
        raise ValueError(f"{what} file {path}: {len(values)} entries for {rows} rows in shard {shard}")
    return values


def _open_shards(source: Any) -> tuple:
    """Shards and {"dim", "model", "where"} from a manifest folder / path or a list of shard paths.

    Manifest (docs/search.md): {"dim": D, "dtype": "float32", "model": {"path", "fingerprint"},
    "shards": [{"file": "shard-00000.npy", "count": N, "ids": "shard-00000.ids.jsonl"}]}, file names
    relative to the manifest's folder ("path" is accepted for "file"; "ids" and "metadata" optional).
    """
    if isinstance(source, (list, tuple)):
        shards = [_Shard(Path(p)) for p in source]
        if not shards:
            raise ValueError("from_shards: no shard paths given")
        info = {"dim": shards[0].dim, "model": None, "where": str(shards[0].path.parent)}
    else:
        path = Path(source)
        if path.suffix in _SHARD_SUFFIXES:
            return _open_shards([path])
        if not path.exists():
            raise FileNotFoundError(f"from_shards: {path} does not exist (expected a folder holding manifest.json, "
                                    "a manifest .json file, or .npy / .safetensors shards)")
        manifest = path / "manifest.json" if path.is_dir() else path
        if not manifest.is_file():
            raise FileNotFoundError(f"from_shards: {manifest} does not exist")
        m = _read_json(manifest)
        if not isinstance(m, dict) or not isinstance(m.get("shards"), list) or not m["shards"]:
            raise ValueError(f"{manifest}: expected an object with a non-empty 'shards' list")
        base, shards = manifest.parent, []
        for i, entry in enumerate(m["shards"]):
            name = entry.get("file", entry.get("path")) if isinstance(entry, dict) else None
            if not isinstance(name, str):
                raise ValueError(f"{manifest}: shards[{i}] has no 'file'")
            side = {key: base / entry[key] if entry.get(key) else None for key in ("ids", "metadata")}
            shard = _Shard(base / name, side["ids"], side["metadata"])
            if "count" in entry and entry["count"] != shard.rows:
                raise ValueError(f"{manifest}: shards[{i}] ({name}) count {entry['count']} but the file holds "
                                 f"{shard.rows} rows")
            shards.append(shard)
        dim = m.get("dim", shards[0].dim)
        info = {"dim": dim, "model": m.get("model"), "where": str(manifest)}
    for shard in shards:
        if shard.dim != info["dim"]:
            raise ValueError(f"shard {shard.path} has dimension {shard.dim}, expected {info['dim']}")
    return shards, info


def _gather_rows(shards: list, rows: np.ndarray, chunk_rows: int) -> np.ndarray:
    """The rows at sorted global positions `rows`, read one chunk at a time."""
    out = np.empty((len(rows), shards[0].dim), np.float32)
    filled, base = 0, 0
    for shard in shards:
        lo, hi = np.searchsorted(rows, [base, base + shard.rows])
        local = rows[lo:hi] - base
        for start in range(0, shard.rows, chunk_rows):
            a, b = np.searchsorted(local, [start, start + chunk_rows])
            if b > a:
                x = shard.read(start, min(shard.rows, start + chunk_rows))
                out[filled:filled + b - a] = x[local[a:b] - start]
                filled += b - a
        base += shard.rows
    return out
