"""Kill-and-resume: a run killed with SIGKILL mid-way, and again while writing a checkpoint (every state
file written, the completion marker not yet), then resumed, reproduces the uninterrupted run's loss
curve and final adapters bit for bit on CPU."""

import json
import os
import subprocess
import sys

import pytest
import torch
from trainer_fixtures import make_checkpoint

import unime

SCRIPT = os.path.join(os.path.dirname(__file__), "train_run.py")


def run(checkpoint, out, *extra, env=None):
    return subprocess.run([sys.executable, SCRIPT, checkpoint, str(out), *extra], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def losses(out):
    """Loss per step, the last record of each step winning (a resumed run repeats the steps after its checkpoint)."""
    by_step = {}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "step" in row and "loss" in row:
                by_step[row["step"]] = row["loss"]
    return by_step


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume_model")
    make_checkpoint(path)
    return str(path)


def test_killed_runs_resume_bit_for_bit(checkpoint, tmp_path):
    straight = tmp_path / "straight"
    done = run(checkpoint, straight)
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    first = run(checkpoint, killed, "--kill-at", "5")
    assert first.returncode == -9, first.stderr  # SIGKILL after step 5: checkpoints 2 and 4 are complete
    assert [os.path.basename(p) for p in unime._C.complete_checkpoints(str(killed / "checkpoints"))] == [
        "checkpoint-00000002", "checkpoint-00000004"]
    second = run(checkpoint, killed, env={"UNIME_KILL_BEFORE_MARKER": "6"})
    assert second.returncode == -9, second.stderr  # resumed at 4, killed writing checkpoint 6
    assert os.path.isdir(killed / "checkpoints" / "checkpoint-00000006")
    assert unime._C.latest_checkpoint(str(killed / "checkpoints")).endswith("checkpoint-00000004")
    third = run(checkpoint, killed)
    assert third.returncode == 0, third.stderr

    assert losses(killed) == losses(straight) and sorted(losses(straight)) != [] and len(losses(straight)) == 10
    a = unime.load_safetensors(straight / "final.safetensors")
    b = unime.load_safetensors(killed / "final.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # keep_last = 2: only the two newest complete checkpoints remain, and no partial one.
    names = sorted(os.listdir(killed / "checkpoints"))
    assert names == ["checkpoint-00000008", "checkpoint-00000010"]


def test_resume_refuses_another_config(checkpoint, tmp_path):
    out = tmp_path / "run"
    assert run(checkpoint, out).returncode == 0
    model = unime.Model.from_pretrained(checkpoint)
    trainer = unime.Trainer(model, "instruct", lora_r=4, lora_alpha=8, lora_dropout=0.2, batch_size=4,
                            hard_negatives=2, max_steps=10, warmup_steps=2, learning_rate=1e-3, chunk_size=3,
                            output_dir=str(out), seed=7)
    with pytest.raises(ValueError, match=r"another config: learning_rate = 0.003 there, 0.001 here"):
        trainer.resume()
