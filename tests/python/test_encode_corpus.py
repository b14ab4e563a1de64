"""`unime encode` on corpora: data-parallel under torchrun (each process its shards, rank 0 the
manifest), and a run killed with SIGKILL half-way then resumed giving the uninterrupted run's shards
(benchmarks/encode_corpus_resume.py, here at 3,000 texts; docs/benchmarks.md has the 1,000,000-text run)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import encode_corpus_resume  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava_corpus")
    save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    return str(path)


def read(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    vectors = np.concatenate([np.load(os.path.join(folder, s["file"])) for s in manifest["shards"]])
    ids = [json.loads(line) for s in manifest["shards"] for line in open(os.path.join(folder, s["ids"]))]
    skipped = [json.loads(line) for line in open(os.path.join(folder, "skipped.jsonl"))]
    return manifest, vectors, ids, skipped


def test_torchrun_splits_shards_across_processes(model_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"t{i}", "text": " ".join(["word"] * (1 + i % 9)) + f" number {i}"} for i in range(23)]
    rows[11] = {"id": "bad", "image": "missing.png"}  # skipped by whichever process owns its shard
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    common = ["encode", str(corpus), "--model", model_dir, "--shard-size", "4", "--quiet"]
    out = subprocess.run([sys.executable, "-m", "unime", *common, "--out", str(single)], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr  # done, with a skipped input
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29533", "-m", "unime", *common, "--out", str(parallel)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]  # torchrun counts any other code as a crash
    assert "22 embeddings" in out.stdout and "1 skipped" in out.stdout
    assert out.stdout.count("unime encode:") == 1  # rank 0 reports for all
    m1, v1, i1, s1 = read(single)
    m2, v2, i2, s2 = read(parallel)
    assert m2["complete"] and len(m2["shards"]) == 6 and m2["count"] == 22
    assert i1 == i2 == [r["id"] for r in rows if r["id"] != "bad"]
    np.testing.assert_allclose(v2, v1, atol=1e-6, rtol=0)
    assert [s["id"] for s in s2] == ["bad"] and s1 == s2


def launch_machines(models, corpus, outs, port):
    """Two torchrun launchers on this host, as two machines would start them (--nnodes 2, a node rank
    each, one rendezvous address): each launcher has its own agent and starts one worker."""
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank",
                               str(node), "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port",
                               str(port), "-m", "unime", "encode", str(corpus), "--model", model, "--shard-size",
                               "4", "--quiet", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for node, (model, out) in enumerate(zip(models, outs))]
    outputs = [p.communicate(timeout=300) for p in procs]
    return [(p.returncode, *o) for p, o in zip(procs, outputs)]


def test_two_machines_under_torchrun_write_one_folder(model_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"t{i}", "text": f"text {i} " + "x" * (i % 7)} for i in range(14)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    single, shared = tmp_path / "single", tmp_path / "shared"
    out = subprocess.run([sys.executable, "-m", "unime", "encode", str(corpus), "--model", model_dir, "--shard-size",
                          "4", "--quiet", "--out", str(single)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    results = launch_machines([model_dir, model_dir], corpus, [shared, shared], 29541)
    for node, (code, stdout, stderr) in enumerate(results):
        assert code == 0, f"node {node}: {stderr[-3000:]}"
    assert "14 embeddings" in results[0][1] and results[1][1].count("unime encode:") == 0  # global rank 0 reports
    m1, v1, i1, _ = read(single)
    m2, v2, i2, _ = read(shared)
    assert m2["complete"] and len(m2["shards"]) == 4 and i1 == i2 == [r["id"] for r in rows]
    np.testing.assert_allclose(v2, v1, atol=1e-6, rtol=0)


def test_an_output_folder_the_machines_do_not_share_is_refused_by_all(model_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": f"text {i}"}) + "\n" for i in range(6)))
    # Two folders stand for one path on two machines' own disks.
    results = launch_machines([model_dir, model_dir], corpus, [tmp_path / "disk0", tmp_path / "disk1"], 29543)
    for node, (code, _, stderr) in enumerate(results):
        assert code != 0, f"node {node} went on"
        assert "is not shared between the processes: rank 1 on" in stderr, f"node {node}: {stderr[-3000:]}"
    assert not (tmp_path / "disk0" / "shard-00000.done.json").exists()  # refused before any work


def test_killed_run_resumes_to_the_uninterrupted_output(tmp_path):
    result = encode_corpus_resume.main(["--texts", "3000", "--shard-size", "500", "--workdir", str(tmp_path)])
    assert result["complete"] and result["count"] == result["rows"] == 3000
    assert 3 <= result["killed_after_shards"] < 6
    assert result["finished_shards_recomputed"] == 0
    assert result["identical"]


class FakeModel:
    """What encode_to_shards needs of a model; `fail` makes encode raise."""

    path, fingerprint, hidden_size = "fake", "fake-0", 4

    def __init__(self, fail=False):
        self.fail = fail

    def encode(self, texts, images, **_):
        if self.fail:
            raise RuntimeError("out of memory on this rank")
        return np.zeros((len(texts), 4), np.float32), []


def test_a_rank_that_fails_stops_the_ranks_waiting_for_it(tmp_path):
    import threading

    from unime.shards import Record, encode_to_shards

    records = [Record(i, text=f"t{i}") for i in range(8)]
    errors = {}

    def rank(r, model):
        try:
            encode_to_shards(model, iter(records), tmp_path, shard_size=2, rank=r, world_size=2, poll_seconds=0.02)
        except Exception as e:
            errors[r] = str(e)

    first = threading.Thread(target=rank, args=(0, FakeModel()))
    first.start()
    rank(1, FakeModel(fail=True))
    first.join(timeout=60)
    assert not first.is_alive(), "rank 0 kept waiting for the failed rank's shards"
    assert errors[1] == "out of memory on this rank"
    assert errors[0].startswith("rank 1 on ") and "RuntimeError: out of memory on this rank" in errors[0]
    assert "run the same command again to resume" in errors[0]
    # the rerun clears the note and finishes; rank 0's shards are kept
    kept = (tmp_path / "shard-00000.done.json").stat().st_mtime_ns
    errors.clear()
    first = threading.Thread(target=rank, args=(0, FakeModel()))
    first.start()
    rank(1, FakeModel())
    first.join(timeout=60)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert not errors and manifest["complete"] and manifest["count"] == 8
    assert (tmp_path / "shard-00000.done.json").stat().st_mtime_ns == kept
    assert not list(tmp_path.glob("failed-rank-*.json"))


def test_a_rank_that_refuses_the_folder_stops_every_machine_at_the_start(model_dir, tmp_path):
    """Machine 1 loads another checkpoint (a copy whose config differs): its rank refuses rank 0's
    folder, and both stop at the start with its reason instead of rank 0 waiting for its shards."""
    import shutil

    other = tmp_path / "other_model"
    shutil.copytree(model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "note": "another fine-tune"}))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": f"text {i}"}) + "\n" for i in range(6)))
    out = tmp_path / "out"
    results = launch_machines([model_dir, str(other)], corpus, [out, out], 29547)
    for node, (code, _, stderr) in enumerate(results):
        assert code != 0, f"node {node} went on"
    assert "rank 1 on " in results[0][2] and "could not start: ValueError: " in results[0][2], results[0][2][-3000:]
    assert "holds embeddings of another model" in results[1][2], results[1][2][-3000:]
    assert not list(out.glob("shard-*.done.json"))


STUCK_RANK = """
import pathlib, sys, time
from unime.shards import Record, encode_to_shards
pathlib.Path(sys.argv[1], "stuck-rank-imported").touch()  # importing torch can take longer than the limit

class Stuck:  # embeds nothing, ever: alive (its heartbeat goes on) until it is killed
    path, fingerprint, hidden_size = "fake", "fake-0", 4
    def encode(self, texts, images, **_):
        time.sleep(3600)

encode_to_shards(Stuck(), iter([Record(i, text=f"t{i}") for i in range(8)]), sys.argv[1], shard_size=2, rank=1,
                 world_size=2, poll_seconds=0.02, silence_limit=float(sys.argv[2]))
"""


def test_rank_0_waits_for_a_slow_rank_but_not_for_one_killed_outright(tmp_path):
    import signal
    import threading
    import time

    from unime.shards import Record, encode_to_shards

    limit = 1.5
    errors = {}

    def rank0():
        try:
            encode_to_shards(FakeModel(), iter([Record(i, text=f"t{i}") for i in range(8)]), tmp_path, shard_size=2,
                             rank=0, world_size=2, poll_seconds=0.02, silence_limit=limit)
        except Exception as e:
            errors[0] = str(e)

    script = tmp_path / "stuck_rank.py"
    script.write_text(STUCK_RANK)
    stuck = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(limit)])
    waiting = threading.Thread(target=rank0)
    try:
        # Rank 0 starts once rank 1's process has imported unime (it then waits for rank 0's manifest
        # and beats within a poll): on a loaded machine the import alone can outlast the 1.5 s limit.
        deadline = time.monotonic() + 120
        while not (tmp_path / "stuck-rank-imported").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        waiting.start()
        while not (tmp_path / "alive-rank-1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3 * limit)  # slower than the limit, but beating: rank 0 keeps waiting
        assert waiting.is_alive() and not errors
    finally:
        stuck.send_signal(signal.SIGKILL)
        stuck.wait()
    waiting.join(timeout=30)
    assert not waiting.is_alive(), "rank 0 kept waiting for a rank killed outright"
    assert errors[0].startswith("rank 1 on ") and "has not been heard from" in errors[0]
