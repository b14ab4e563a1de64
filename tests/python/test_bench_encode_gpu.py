"""benchmarks/bench_encode_gpu.py runs end to end: its full-size GPU measurement is prepared for a lent
GPU, so the same code runs here on tiny models on the CPU, and its embeddings must equal the peers'."""

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import bench_encode_gpu  # noqa: E402


def test_runs_on_tiny_models_and_matches_the_peers(tmp_path):
    rows = bench_encode_gpu.main(["--size", "tiny", "--device", "cpu", "--dtype", "float32", "--images", "2",
                                  "--texts", "3", "--repeats", "1", "--tmp", str(tmp_path)])
    assert [(r["model"], r["set"], r["n"]) for r in rows] == [("llava-next", "images", 2), ("llava-next", "texts", 3),
                                                             ("phi3-v", "images", 2), ("phi3-v", "texts", 3)]
    for r in rows:
        assert r["min_cos"] >= 0.9999, r  # the same embeddings as the peer
        assert r["unime_s"] > 0 and r["bs1_s"] > 0 and r["work"] > 0 and r["own"] > 0, r
        assert r["nominal"] is None  # no nominal peak for a CPU
    # LLaVA-NeXT's peer runs padded batches too; the Phi-3.5-V reference only one input at a time.
    assert rows[0]["padded_s"] > 0 and rows[2]["padded_s"] is None
    # unime skips LLaVA's last CLIP layer and most of the last decoder layer: less work than the peer.
    assert rows[0]["own"] < rows[0]["work"]
    assert os.listdir(tmp_path) == []  # the checkpoints are removed


def test_nominal_peaks_by_device_name():
    assert bench_encode_gpu.nominal_peak("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989e12
    assert bench_encode_gpu.nominal_peak("NVIDIA H100 PCIe", torch.bfloat16) == 756e12
    assert bench_encode_gpu.nominal_peak("NVIDIA H200", torch.float16) == 989e12
    assert bench_encode_gpu.nominal_peak("NVIDIA GeForce RTX 4090", torch.bfloat16) is None
    assert bench_encode_gpu.nominal_peak("NVIDIA H100 80GB HBM3", torch.float32) is None
