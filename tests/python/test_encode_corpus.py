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


def test_killed_run_resumes_to_the_uninterrupted_output(tmp_path):
    result = encode_corpus_resume.main(["--texts", "3000", "--shard-size", "500", "--workdir", str(tmp_path)])
    assert result["complete"] and result["count"] == result["rows"] == 3000
    assert 3 <= result["killed_after_shards"] < 6
    assert result["finished_shards_recomputed"] == 0
    assert result["identical"]
