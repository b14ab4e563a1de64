"""unime.Index (FAISS): exact search against numpy brute force, approximate recall, persistence and the
model fingerprint check, streaming from shards (with a peak-memory bound), search through a model, and
bad input. Speed is measured by benchmarks/bench_index.py, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
from unime.index import Index, SearchHit  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    # FAISS's OpenMP loops slow down several-fold when the cores are shared with other work (a
    # 2-core machine with a build running); one thread keeps this file fast and steady.
    import faiss
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def unit(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng, n, d, clusters=200, spread=1.0):
    """Embedding-like data: L2-normalised points around random centers (as benchmarks/bench_index.py).
    Queries must come from the same call: another rng draws other centers."""
    centers = unit(rng, clusters, d)
    x = centers[rng.integers(clusters, size=n)] + rng.standard_normal((n, d), dtype=np.float32) * spread / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x, ids, q, k):
    """(ids, scores) of the k largest inner products, by numpy."""
    scores = q @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.asarray(ids, dtype=object)[order], np.take_along_axis(scores, order, 1)


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())])


class FakeModel:
    """Stands in for unime.Model: a deterministic embedding per (instruction, text/image) string."""

    def __init__(self, fingerprint="fake-0123456789abcdef", path="/models/fake", dim=24):
        self.fingerprint, self.path, self.dim, self.calls = fingerprint, path, dim, []

    def encode(self, texts=None, images=None, *, instruction=None, batch_size=8, output="torch"):
        self.calls.append({"texts": texts, "images": images, "instruction": instruction, "output": output})
        single = isinstance(texts, str) or isinstance(images, str)
        items = [texts] if single and texts is not None else texts if texts is not None else None
        imgs = [images] if single and images is not None else images
        n = len(items if items is not None else imgs)
        out = np.stack([self.vector(f"{items[i] if items else ''}|{imgs[i] if imgs else ''}") for i in range(n)])
        return out[0] if single else out

    def vector(self, s):
        v = np.random.default_rng(abs(hash(s)) % (2 ** 32)).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)


# --------------------------------------------------------------------------------------- exact


def test_flat_equals_numpy_brute_force_through_adds_and_deletes():
    rng = np.random.default_rng(0)
    x = unit(rng, 3000, 48)
    ids = [f"doc-{i}" for i in range(3000)]
    index = Index(kind="flat")
    index.add(x[:1000], ids=ids[:1000])
    index.add(torch.from_numpy(x[1000:2000]), ids=ids[1000:2000])  # torch tensors too
    gone = set(rng.choice(2000, size=300, replace=False).tolist())
    assert index.delete([ids[i] for i in gone]) == 300
    index.add(x[2000:], ids=ids[2000:])
    live = [i for i in range(3000) if i not in gone]
    assert len(index) == len(live) and "doc-5" in index or 5 in gone
    q = unit(rng, 25, 48)
    want_ids, want_scores = brute_force(x[live], [ids[i] for i in live], q, 10)
    got_ids, got_scores = index.search(q, k=10, output="arrays")
    assert got_ids.dtype == object and got_ids.shape == (25, 10)
    assert (got_ids == want_ids).all()
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-5)
    few_ids, few_scores = index.search(q[:3], k=10, output="arrays")  # < 20 queries: the BLAS path
    assert (few_ids == want_ids[:3]).all()
    np.testing.assert_allclose(few_scores, want_scores[:3], rtol=0, atol=1e-5)
    hits = index.search(torch.from_numpy(q[:2]), k=3)
    assert [h.id for h in hits[0]] == list(want_ids[0, :3]) and isinstance(hits[0][0], SearchHit)


def test_fewer_than_k_pads_with_minus_one_and_nan():
    index = Index(kind="flat")
    index.add(np.eye(3, 8, dtype=np.float32), ids=[7, 8, 9], metadata=[{"a": 1}, None, {"b": [2]}])
    ids, scores = index.search(np.eye(1, 8, dtype=np.float32), k=5, output="arrays")
    assert ids.dtype == np.int64 and ids[0, 0] == 7 and (ids[0, 3:] == -1).all()
    assert np.isnan(scores[0, 3:]).all() and scores[0, 0] == pytest.approx(1.0)
    hits = index.search(np.eye(1, 8, dtype=np.float32), k=5)[0]
    assert len(hits) == 3 and hits[0] == SearchHit(7, 1.0, {"a": 1})
    empty = Index(dim=8)
    assert empty.search(np.ones(8), k=2) == [[]]
    assert np.isnan(empty.search(np.ones((2, 8)), k=2, output="arrays")[1]).all()


def test_normalize_option_gives_cosine():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 16)).astype(np.float32) * 3
    index = Index(kind="flat")
    index.add(x, normalize=True)
    _, scores = index.search(x[:4] * 7, k=1, normalize=True, output="arrays")
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


# ------------------------------------------------------------------------------------- approximate


@pytest.fixture(scope="module")
def clustered_data():
    data = clustered(np.random.default_rng(2), 20_200, 64, clusters=1000)
    x, q = data[:20_000], data[20_000:]  # queries: fresh draws from the same clusters
    scores = q @ x.T
    truth = np.argsort(-scores, axis=1)[:, :10]
    return x, q, truth


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_at_10(kind, clustered_data):
    x, q, truth = clustered_data
    index = Index(kind=kind)
    index.add(x)  # ids default to row positions
    ids, _ = index.search(q, k=10, output="arrays")
    assert recall(ids, truth) >= 0.95
    if kind == "hnsw":
        # Deletes are tombstones: they never come back, and recall over the live rows holds.
        gone = np.arange(0, 20_000, 7)
        index.delete(gone.tolist())
        live = np.setdiff1d(np.arange(20_000), gone)
        truth_live = live[np.argsort(-(q @ x[live].T), axis=1)[:, :10]]
        ids, _ = index.search(q, k=10, output="arrays")
        assert not np.isin(ids, gone).any() and (ids >= 0).all()
        assert recall(ids, truth_live) >= 0.95
        index.compact()
        assert index._index.ntotal == len(live) and not index._tombstones
        assert recall(index.search(q, k=10, output="arrays")[0], truth_live) >= 0.95


def test_tune_and_fixed_search_parameters(clustered_data):
    x, q, truth = clustered_data
    fixed = Index(kind="ivf", nprobe=2)
    fixed.add(x)
    assert fixed.nprobe == 2  # given, so never self-tuned
    low = recall(fixed.search(q, k=10, output="arrays")[0], truth)
    out = fixed.tune(q[:100], target_recall=0.9)
    assert out["recall"] >= 0.9 and fixed.nprobe == out["nprobe"] > 2
    assert recall(fixed.search(q, k=10, output="arrays")[0], truth) > low
    fixed.nprobe = 1
    fixed.add(x[:1000], ids=range(20_000, 21_000))
    assert fixed.nprobe == 1


def test_auto_starts_exact_and_converts_to_ivf():
    rng = np.random.default_rng(4)
    x = clustered(rng, 3000, 32, clusters=40)
    index = Index(exact_threshold=2000)
    index.add(x[:1500], ids=[f"a{i}" for i in range(1500)], metadata=[{"i": i} for i in range(1500)])
    assert index.kind == "flat"
    index.delete("a3")
    index.add(x[1500:], ids=[f"a{i}" for i in range(1500, 3000)])
    assert index.kind == "ivf" and index.requested_kind == "auto" and len(index) == 2999
    assert index.nlist == min(round(4 * np.sqrt(2999)), 2999 // 39)
    hit = index.search(x[10], k=1)[0][0]
    assert hit.id == "a10" and hit.metadata == {"i": 10}
    assert "a3" not in index
    lists = index.nlist
    index.add(clustered(rng, 9500, 32, clusters=40))  # past 4x the trained size: lists retrained, more of them
    assert index.kind == "ivf" and index.nlist > lists and len(index) == 12_499


def test_ivfpq_compresses():
    rng = np.random.default_rng(5)
    x = clustered(rng, 5000, 64, clusters=50)
    index = Index(kind="ivfpq")
    index.add(x)
    assert index._index.code_size == 8  # pq_m = 64 / 8 sub-vectors of one byte
    ids, _ = index.search(x[:50], k=10, output="arrays")
    assert (ids[:, :10] == np.arange(50)[:, None]).any(axis=1).mean() >= 0.9  # a row finds itself
    with pytest.raises(ValueError, match="compressed codes"):
        index.rebuild()


# ----------------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_save_load_roundtrip(kind, tmp_path):
    rng = np.random.default_rng(6)
    x = clustered(rng, 2000, 32, clusters=30)
    model = FakeModel(dim=32)
    index = Index(kind=kind, model=model, ef_search=77)
    ids = [f"s{i}" if i % 2 else i for i in range(2000)]  # str and int ids, kept apart
    index.add(x, ids=ids, metadata=[{"row": i, "tags": ["x", i]} if i % 3 else None for i in range(2000)])
    index.delete([2, "s3", 4])
    before = index.search(x[:20], k=7, output="arrays")
    index.save(tmp_path / "ix")
    m = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert m["dim"] == 32 and m["kind"] == kind and m["count"] == 1997 and m["unime_version"]
    assert m["model"] == {"path": "/models/fake", "fingerprint": "fake-0123456789abcdef"}
    loaded = Index.load(tmp_path / "ix")
    after = loaded.search(x[:20], k=7, output="arrays")
    assert (before[0] == after[0]).all() and np.array_equal(before[1], after[1], equal_nan=True)
    assert loaded.ids == index.ids and loaded.metadata("s5") == {"row": 5, "tags": ["x", 5]}
    assert loaded.metadata("s9") is None and loaded.ef_search == 77 and 2 not in loaded and "s3" not in loaded
    assert loaded.model is None and loaded.model_info == index.model_info
    # Adding after load continues the labels: no clash with the deleted ones.
    loaded.add(x[:2], ids=["new-0", "new-1"])
    assert loaded.search(x[0], k=2)[0][0].id in (0, "new-0")


def test_load_refuses_a_different_model(tmp_path):
    index = Index.from_model(FakeModel())
    index.add(texts=["a", "b"])
    index.save(tmp_path)
    other = FakeModel(fingerprint="qwen2_vl-ffffffffffffffff", path="/models/other")
    with pytest.raises(ValueError) as e:
        Index.load(tmp_path, model=other)
    msg = str(e.value)
    assert "/models/fake" in msg and "fake-0123456789abcdef" in msg
    assert "/models/other" in msg and "qwen2_vl-ffffffffffffffff" in msg
    same = Index.load(tmp_path, model=FakeModel())
    assert same.search(texts="a", k=1)[0][0].id == 0


def test_save_is_atomic(tmp_path, monkeypatch):
    import unime.index as mod
    rng = np.random.default_rng(7)
    x = unit(rng, 200, 16)
    index = Index(kind="flat")
    index.add(x[:100])
    index.save(tmp_path)
    files_before = sorted(os.listdir(tmp_path))
    index.add(x[100:])
    real = mod._atomic_write

    def crash_at_manifest(path, write):
        if path.name == "manifest.json":
            raise OSError("disk full")  # as if the process died before the commit point
        real(path, write)

    monkeypatch.setattr(mod, "_atomic_write", crash_at_manifest)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == files_before  # the half-written generation is cleaned up
    assert len(Index.load(tmp_path)) == 100
    monkeypatch.setattr(mod, "_atomic_write", real)
    index.save(tmp_path)
    assert len(Index.load(tmp_path)) == 200
    assert len(os.listdir(tmp_path)) == len(files_before)  # the old generation's files are gone


def test_load_rejects_damaged_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        Index.load(tmp_path)
    index = Index(kind="flat")
    index.add(np.eye(4, dtype=np.float32))
    index.save(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / m["files"]["ids"]).write_text("0\n1\n")
    with pytest.raises(ValueError, match="count 4 but 4 labels, 2 ids"):
        Index.load(tmp_path)
    (tmp_path / m["files"]["index"]).unlink()
    with pytest.raises(FileNotFoundError, match="index file"):
        Index.load(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a unime.Index manifest"):
        Index.load(tmp_path)


# ------------------------------------------------------------------------------------------ shards


def write_shards(folder: Path, x: np.ndarray, sizes, fmt="npy", ids=None, model=None):
    """Shards and a manifest.json as `unime encode` writes them (docs/search.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries, start = [], 0
    for i, size in enumerate(sizes):
        part = x[start:start + size]
        name = f"shard-{i:05d}.{fmt}"
        if fmt == "npy":
            np.save(folder / name, part)
        else:
            from safetensors.numpy import save_file
            save_file({"embeddings": part}, str(folder / name))
        entry = {"file": name, "count": size}
        if ids is not None:
            entry["ids"] = f"shard-{i:05d}.ids.jsonl"
            (folder / entry["ids"]).write_text("".join(json.dumps(v) + "\n" for v in ids[start:start + size]))
        entries.append(entry)
        start += size
    manifest = {"dim": x.shape[1], "dtype": str(x.dtype), "model": model, "shards": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("fmt", ["npy", "safetensors"])
def test_from_shards_flat_equals_adding_all_at_once(fmt, tmp_path):
    rng = np.random.default_rng(8)
    x = unit(rng, 1000, 24)
    ids = [f"img-{i}" for i in range(1000)]
    model = {"path": "/models/fake", "fingerprint": "fake-0123456789abcdef"}
    folder = write_shards(tmp_path / "emb", x, [300, 450, 250], fmt, ids, model)
    q = unit(rng, 10, 24)
    whole = Index(kind="flat")
    whole.add(x, ids=ids)
    want = whole.search(q, k=10, output="arrays")
    for source in (folder, folder / "manifest.json"):
        index = Index.from_shards(source, chunk_rows=128)  # chunks cross shard boundaries
        got = index.search(q, k=10, output="arrays")
        assert (got[0] == want[0]).all() and np.array_equal(got[1], want[1])
        assert index.model_info == model and index.kind == "flat"
    with pytest.raises(ValueError, match="fake-0123456789abcdef"):
        Index.from_shards(folder, model=FakeModel(fingerprint="other-1"))


def test_from_shards_paths_without_ids_and_float16(tmp_path):
    rng = np.random.default_rng(9)
    x = unit(rng, 500, 16)
    np.save(tmp_path / "a.npy", x[:200].astype(np.float16))
    from safetensors.numpy import save_file
    save_file({"embeddings": x[200:]}, str(tmp_path / "b.safetensors"))
    index = Index.from_shards([tmp_path / "a.npy", tmp_path / "b.safetensors"])
    assert index.ids == list(range(500))  # running positions across shards
    assert index.search(x[300], k=1)[0][0].id == 300
    assert index.search(x[5].astype(np.float16).astype(np.float32), k=1)[0][0].id == 5


@pytest.mark.memory_bound
def test_from_shards_ivfpq_streams_in_bounded_memory(tmp_path):
    # 8 shards of 12,500 x 512 float32: 204.8 MB. The process must grow well below that: the training
    # sample (4,096 rows here, to keep the test fast; twice for residuals) or one 8 MiB chunk, plus what
    # the index keeps (64-byte codes and ids, about 15 MiB, and the Python id map, about 12 MiB).
    # Measured: about 55 MiB (70 MiB with the default 10,000-row sample).
    rng = np.random.default_rng(10)
    for i in range(8):
        np.save(tmp_path / f"shard-{i:05d}.npy", rng.standard_normal((12_500, 512), dtype=np.float32))
    manifest = {"dim": 512, "dtype": "float32", "model": None,
                "shards": [{"file": f"shard-{i:05d}.npy", "count": 12_500} for i in range(8)]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    total_mib = 8 * 12_500 * 512 * 4 / 2 ** 20
    # The peak is read as VmHWM after resetting it (clear_refs 5) once the imports are done: ru_maxrss
    # would still hold the import peak of torch, which is higher than the whole build.
    code = textwrap.dedent(f"""
        import numpy, faiss
        from unime.index import Index

        def status(key):
            return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

        before = status("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        index = Index.from_shards({str(tmp_path)!r}, kind="ivfpq", nlist=64, train_size=4096)
        print(len(index), index._index.code_size, (status("VmHWM:") - before) / 1024)
    """)
    # One OpenMP thread: on a loaded 2-core machine FAISS's k-means slows down 3-10x with two.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    if "clear_refs" in out.stderr:
        pytest.skip("this kernel cannot reset the peak RSS (/proc/self/clear_refs)")
    assert out.returncode == 0, out.stderr
    count, code_size, grown_mib = out.stdout.split()
    print(f"peak RSS growth {grown_mib} MiB for {total_mib:.0f} MiB of shards")
    assert int(count) == 100_000 and int(code_size) == 64
    assert float(grown_mib) < 0.5 * total_mib, f"peak RSS grew {grown_mib} MiB for {total_mib:.0f} MiB of shards"


def test_from_shards_bad_input(tmp_path):
    x = unit(np.random.default_rng(11), 40, 8)
    folder = write_shards(tmp_path / "ok", x, [20, 20])
    m = json.loads((folder / "manifest.json").read_text())
    m["shards"][1]["count"] = 21
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"shards\[1\] \(shard-00001.npy\) count 21 but the file holds 20"):
        Index.from_shards(folder)
    bad = x.copy()
    bad[27, 3] = np.nan
    folder = write_shards(tmp_path / "nan", bad, [20, 20])
    with pytest.raises(ValueError, match="shard-00001.npy: row 7 contains NaN"):
        Index.from_shards(folder)
    from safetensors.numpy import save_file
    save_file({"vectors": x}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(KeyError, match="no tensor 'embeddings'"):
        Index.from_shards([tmp_path / "wrong.safetensors"])
    np.save(tmp_path / "cut.npy", x)
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        Index.from_shards([tmp_path / "cut.npy"])
    with pytest.raises(FileNotFoundError, match="missing does not exist"):
        Index.from_shards(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="manifest.json does not exist"):
        Index.from_shards(tmp_path)
    with pytest.raises(ValueError, match="3 ids for 40 rows"):
        Index.from_shards(write_shards(tmp_path / "ok2", x, [20, 20]), ids=[1, 2, 3])
    folder = write_shards(tmp_path / "dup", x, [20, 20], ids=list(range(20)) * 2)
    with pytest.raises(ValueError, match=r"shard-00001.npy rows 0..19: duplicate id 0 \(ids\[0\]\) is already"):
        Index.from_shards(folder)


# ------------------------------------------------------------------------------------------- model


def test_add_and_search_through_a_model():
    model = FakeModel()
    index = Index.from_model(model, kind="flat")
    texts = ["a red car", "a blue boat", "a green tree"]
    assert index.add(texts=texts, ids=["car", "boat", "tree"], metadata=[{"t": t} for t in texts]) == \
        ["car", "boat", "tree"]
    index.add(images=["cat.png", "dog.png"], ids=["cat", "dog"])
    index.add(texts=["caption"], images=["pair.png"], ids=["pair"])
    hits = index.search(texts=["a blue boat", "a green tree"], k=2)
    assert [h[0].id for h in hits] == ["boat", "tree"] and hits[0][0].metadata == {"t": "a blue boat"}
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert index.search(images="dog.png", k=1)[0][0].id == "dog"
    assert index.search(texts=["caption"], images=["pair.png"], k=1)[0][0].id == "pair"
    index.search(texts="q", instruction="Find the image", k=1)
    assert model.calls[-1]["instruction"] == "Find the image" and model.calls[-1]["output"] == "numpy"
    with pytest.raises(ValueError, match="duplicate id 'car'"):  # checked before embedding
        index.add(texts=["again"], ids=["car"])
    with pytest.raises(ValueError, match="no model"):
        Index(kind="flat", dim=24).search(texts="x")


# --------------------------------------------------------------------------------------- bad input


def test_bad_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown index kind 'lsh'"):
        Index(kind="lsh")
    index = Index(kind="flat")
    index.add(np.eye(4, 8, dtype=np.float32), ids=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="dimension 7, but the index holds dimension 8"):
        index.add(np.ones((2, 7), np.float32))
    with pytest.raises(ValueError, match="dimension 9, but the index holds dimension 8"):
        index.search(np.ones((1, 9), np.float32))
    nan = np.ones((5, 8), np.float32)
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="vectors row 3 contains NaN"):
        index.add(nan)
    with pytest.raises(ValueError, match="queries row 3 contains NaN"):
        index.search(nan)
    with pytest.raises(ValueError, match="3 ids for 2 items"):
        index.add(np.ones((2, 8), np.float32), ids=["x", "y", "z"])
    with pytest.raises(ValueError, match="1 metadata entries for 2 items"):
        index.add(np.ones((2, 8), np.float32), ids=["x", "y"], metadata=[{}])
    with pytest.raises(ValueError, match="duplicate id 'b'"):
        index.add(np.ones((1, 8), np.float32), ids=["b"])
    with pytest.raises(ValueError, match=r"duplicate id 'x' at ids\[0\] and ids\[1\]"):
        index.add(np.ones((2, 8), np.float32), ids=["x", "x"])
    with pytest.raises(TypeError, match="got bool"):
        index.add(np.ones((1, 8), np.float32), ids=[True])
    with pytest.raises(TypeError, match="got float"):
        index.add(np.ones((1, 8), np.float32), ids=[1.5])
    with pytest.raises(ValueError, match=r"metadata\[1\] is not JSON-serialisable"):
        index.add(np.ones((2, 8), np.float32), ids=["x", "y"], metadata=[{}, {"v": object()}])
    with pytest.raises(KeyError, match="id 'nope' is not in the index"):
        index.delete("nope")
    assert index.delete(["nope"], missing="ignore") == 0
    with pytest.raises(ValueError, match="k must be a positive int"):
        index.search(np.ones(8, np.float32), k=0)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        index.add(np.ones((2, 2, 8), np.float32))
    assert len(index) == 4 and index.ids == ["a", "b", "c", "d"]  # refused calls changed nothing
    with pytest.raises(ValueError, match="ivfpq needs at least 256 training vectors"):
        Index(kind="ivfpq").add(np.ones((100, 16), np.float32))
    with pytest.raises(ValueError, match="device must be"):
        Index(device="tpu")
