"""unime.Trainer on a CUDA device: the same gradients and steps as on the CPU in fp32 (each stage, with
and without GradCache), bf16 / fp16 autocast that trains, and a model held in bf16."""

import numpy as np
import pytest
import torch
from trainer_fixtures import distill_examples, instruct_examples, judge_examples, make_checkpoint, teacher_table

import unime
from unime.train import TeacherEmbeddings

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("trainer-gpu")
    make_checkpoint(path)
    return str(path)


def examples_for(stage, n=8):
    data = {"distill": distill_examples, "instruct": lambda k: instruct_examples(k, negatives=1),
            "judge": judge_examples}[stage](n)
    teacher = TeacherEmbeddings(teacher_table(n).numpy(), [e.id for e in data]) if stage == "distill" else None
    return data, teacher


def trainer(checkpoint, stage, teacher, device, dtype="float32", **config):
    config = dict(dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, batch_size=8, hard_negatives=3, max_steps=10,
                       seed=5, learning_rate=3e-3), **config)
    model = unime.Model.from_pretrained(checkpoint, dtype=dtype, device=device)
    return unime.Trainer(model, stage, teacher=teacher, **config)


def relative_diff(a, b):
    scale = max(1.0, max(v.abs().max().item() for v in b.values()))
    return max((a[k].float().cpu() - b[k].float().cpu()).abs().max().item() for k in b) / scale


@pytest.fixture(autouse=True)
def exact_matmuls():
    # fp32 on the GPU, not TF32, so CPU and GPU differ by summation order only.
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("stage", ["distill", "instruct", "judge"])
@pytest.mark.parametrize("chunk", [0, 3])
def test_cuda_gradients_and_steps_match_the_cpu(checkpoint, stage, chunk):
    data, teacher = examples_for(stage)
    cpu = trainer(checkpoint, stage, teacher, "cpu", chunk_size=chunk)
    gpu = trainer(checkpoint, stage, teacher, "cuda", chunk_size=chunk)
    diff = relative_diff(gpu.gradients(data), cpu.gradients(data))
    print(f"{stage} chunk {chunk}: CUDA vs CPU gradient, max difference relative {diff:.2e}")
    assert diff <= 1e-4
    cpu_losses = [cpu.step(data)["loss"] for _ in range(3)]
    gpu_losses = [gpu.step(data)["loss"] for _ in range(3)]
    print(f"{stage} chunk {chunk}: losses CPU {cpu_losses} CUDA {gpu_losses}")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4, atol=1e-5)
    weights = relative_diff(dict(gpu.trainable_parameters()), dict(cpu.trainable_parameters()))
    assert weights <= 1e-4
    assert all(p.device.type == "cuda" for _, p in gpu.trainable_parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_trains_close_to_fp32(checkpoint, precision):
    data, _ = examples_for("instruct")
    fp32 = trainer(checkpoint, "instruct", None, "cuda").gradients(data)
    mixed = trainer(checkpoint, "instruct", None, "cuda", mixed_precision=precision)
    diff = relative_diff(mixed.gradients(data), fp32)
    print(f"{precision} autocast: gradient difference relative to fp32 {diff:.2e}")
    assert diff <= 5e-2
    t = trainer(checkpoint, "instruct", None, "cuda", mixed_precision=precision, chunk_size=3, max_steps=40,
                learning_rate=5e-3, temperature=0.05)
    losses = [t.step(data)["loss"] for _ in range(40)]
    print(f"{precision} overfit: {losses[0]:.4f} -> {losses[-1]:.5f}")
    assert all(np.isfinite(losses)) and losses[-1] < 0.05 * losses[0]


def test_bf16_weights_train(checkpoint):
    """The base model held in bf16 on the GPU (as a 7B model is), LoRA in fp32."""
    data, _ = examples_for("instruct")
    t = trainer(checkpoint, "instruct", None, "cuda", dtype="bfloat16", chunk_size=3, max_steps=40,
                learning_rate=5e-3, temperature=0.05)
    losses = [t.step(data)["loss"] for _ in range(40)]
    print(f"bf16 weights overfit: {losses[0]:.4f} -> {losses[-1]:.5f}")
    assert all(np.isfinite(losses)) and losses[-1] < 0.05 * losses[0]
    assert all(p.dtype == torch.float32 for _, p in t.trainable_parameters())
