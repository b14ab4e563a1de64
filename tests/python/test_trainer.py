"""unime.Trainer beyond parity: GradCache's gradients, overfitting one batch, bad input, config
round trips, and exporting to PEFT and to a merged Hugging Face checkpoint."""

import json
import os
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tolerances import assert_embeddings_match
from trainer_fixtures import (distill_examples, hf_prompts, instruct_examples, judge_examples, make_checkpoint,
                              teacher_table)

import unime
from unime.train import Example, Input, TeacherEmbeddings, TrainerConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("trainer")
    make_checkpoint(path)
    return str(path)


def trainer(checkpoint, stage, teacher=None, **config):
    config = dict(dict(lora_r=4, lora_alpha=8, lora_dropout=0.0, batch_size=8, hard_negatives=3, max_steps=100, seed=5),
                  **config)
    return unime.Trainer(unime.Model.from_pretrained(checkpoint), stage, teacher=teacher, **config)


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def largest(a):
    return max(g.abs().max().item() for g in a.values())


@pytest.mark.parametrize("stage", ["distill", "instruct", "judge"])
def test_gradcache_gives_the_unchunked_gradients(checkpoint, stage):
    examples = {"distill": distill_examples, "instruct": lambda n: instruct_examples(n, negatives=1),
                "judge": judge_examples}[stage](8)
    teacher = TeacherEmbeddings(teacher_table(8).numpy(), [e.id for e in examples]) if stage == "distill" else None
    full = trainer(checkpoint, stage, teacher).gradients(examples)
    assert all(g.abs().sum() > 0 for k, g in full.items() if "lora_B" in k)
    scale = max(1.0, largest(full))  # 1e-5 relative to the gradient's size (stage 1's sum-KL is large)
    for chunk in (1, 3, 5):
        chunked = trainer(checkpoint, stage, teacher, chunk_size=chunk).gradients(examples)
        diff = max_diff(chunked, full)
        print(f"{stage} chunk {chunk}: max gradient difference {diff:.2e} (largest gradient {largest(full):.2e})")
        assert diff <= 1e-5 * scale


def test_gradcache_replays_dropout_masks(checkpoint):
    """With LoRA dropout, pass 2 must draw pass 1's masks: the chunked gradient is then the gradient of
    the loss pass 1 computed, so two identical runs agree bit for bit and the step's loss is finite."""
    examples = instruct_examples(8)
    a = trainer(checkpoint, "instruct", chunk_size=3, lora_dropout=0.3).gradients(examples)
    b = trainer(checkpoint, "instruct", chunk_size=3, lora_dropout=0.3).gradients(examples)
    assert max_diff(a, b) == 0
    no_drop = trainer(checkpoint, "instruct", chunk_size=3).gradients(examples)
    assert max_diff(a, no_drop) > 0  # dropout is on


def test_activation_checkpointing_gives_the_same_gradients(checkpoint):
    """Per-layer recomputation (language model and vision tower) changes memory, not the gradient; with
    LoRA dropout the recomputation replays the forward's masks."""
    examples = instruct_examples(8)
    for dropout in (0.0, 0.3):
        plain = trainer(checkpoint, "instruct", lora_dropout=dropout,
                        lora_components=["language_model", "vision_tower"],
                        lora_targets=["q_proj", "fc1", "down_proj"]).gradients(examples)
        recomputed = trainer(checkpoint, "instruct", lora_dropout=dropout, gradient_checkpointing=True,
                             lora_components=["language_model", "vision_tower"],
                             lora_targets=["q_proj", "fc1", "down_proj"]).gradients(examples)
        diff = max_diff(recomputed, plain)
        print(f"checkpointing, dropout {dropout}: max gradient difference {diff:.2e}")
        assert diff <= 1e-6 * max(1.0, largest(plain))


def test_one_batch_overfits(checkpoint):
    examples = instruct_examples(8, seed=3)
    t = trainer(checkpoint, "instruct", learning_rate=5e-3, lr_schedule="cosine", warmup_steps=5, max_steps=60,
                lora_r=8, lora_alpha=16, temperature=0.05)
    losses = [t.step(examples)["loss"] for _ in range(60)]
    print(f"overfit: {losses[0]:.3f} -> {losses[-1]:.5f}")
    assert losses[-1] < 1e-3 * losses[0]


def test_bad_input_is_named_and_skip_loses_nothing_else(checkpoint, tmp_path):
    examples = instruct_examples(8)
    query = Input(prompt="<|image_1|>\nRepresent the image.\n", image=str(tmp_path / "missing.jpg"))
    broken = Example(id="broken-7", query=query, positive=Input(prompt="a caption"))
    batch = examples[:7] + [broken]
    with pytest.raises(ValueError, match=r"example broken-7: image .*missing\.jpg"):
        trainer(checkpoint, "instruct").step(batch)
    t = trainer(checkpoint, "instruct", on_error="skip")
    metrics = t.step(batch)
    assert metrics["examples"] == 7 and [s["id"] for s in metrics["skipped"]] == ["broken-7"]
    assert "missing.jpg" in metrics["skipped"][0]["reason"] and np.isfinite(metrics["loss"])
    # The other 7 examples' step is the one a 7-example batch would have made.
    seven = trainer(checkpoint, "instruct", batch_size=7, on_error="skip").step(examples[:7])
    assert abs(seven["loss"] - metrics["loss"]) <= 1e-6


def test_other_bad_inputs_are_named(checkpoint):
    texts = distill_examples(8)
    table = TeacherEmbeddings(teacher_table(8).numpy(), [e.id for e in texts])
    with pytest.raises(ValueError, match=r"example 0: .*no \{text\} slot"):
        trainer(checkpoint, "distill", table, distill_template="Summary above sentences in one word:").step(texts)
    missing = TeacherEmbeddings(teacher_table(7).numpy(), [e.id for e in texts[:7]])
    with pytest.raises(KeyError, match=r"teacher id '7' is not in"):
        trainer(checkpoint, "distill", missing).step(texts)
    skipped = trainer(checkpoint, "distill", missing, on_error="skip").step(texts)
    assert [s["id"] for s in skipped["skipped"]] == ["7"] and skipped["examples"] == 7
    with pytest.raises(ValueError, match=r"a batch of 4 examples has 3 in-batch negatives per query, fewer than "
                                         r"hard_negatives = 8"):
        trainer(checkpoint, "instruct", batch_size=4, hard_negatives=8).step(instruct_examples(4))
    with pytest.raises(ValueError, match=r"takes batch_size / world_size = 8 examples"):
        trainer(checkpoint, "instruct").step(instruct_examples(6))
    with pytest.raises(ValueError, match="stage 1 .* trains the language model only"):
        trainer(checkpoint, "distill", table, lora_components=["language_model", "vision_tower"])
    with pytest.raises(ValueError, match="needs a teacher"):
        trainer(checkpoint, "distill")


def test_config_round_trips_and_names_bad_fields(checkpoint, tmp_path):
    config = TrainerConfig.for_stage("distill", batch_size=64,
                                     distill_template="{text} Summary above sentences in one word: \n")
    assert config.lora_r == 32 and config.learning_rate == 5e-4  # the paper's stage-1 values
    for name in ("c.json", "c.yaml"):
        config.save(tmp_path / name)
        assert TrainerConfig.load(tmp_path / name) == config
    with pytest.raises(ValueError, match="unknown TrainerConfig field"):
        TrainerConfig.from_dict({"lr": 1})
    # The C++ trainer validates what it reads and names the field.
    with pytest.raises(ValueError, match="lr_schedule: must be 'linear', 'cosine' or 'constant'"):
        trainer(checkpoint, "instruct", lr_schedule="exp")
    with pytest.raises(ValueError, match="grad_accumulation: must be positive and divide batch_size"):
        trainer(checkpoint, "instruct", grad_accumulation=3)


def test_exports_load_in_transformers_and_peft_and_back(checkpoint, tmp_path):
    from peft import PeftModel
    from transformers import LlavaNextForConditionalGeneration
    from test_trainer_parity import _processor

    t = trainer(checkpoint, "instruct", learning_rate=1e-2, lora_targets=["q_proj", "v_proj", "fc1", "linear_1"],
                lora_components=["language_model", "vision_tower", "projector"])
    for _ in range(3):
        t.step(instruct_examples(8))
    t.save_adapter(tmp_path / "adapter")
    t.save_merged(tmp_path / "merged")
    examples = instruct_examples(6, seed=9)
    inputs = [e.query for e in examples]
    t.model.eval()
    ours = t.model.encode(prompts=[x.prompt for x in inputs], images=[x.image for x in inputs])
    processor = _processor(checkpoint)
    prompts, images = hf_prompts(inputs)
    batch = processor(text=prompts, images=images, padding=True, return_tensors="pt")

    def hf_embed(m):
        with torch.no_grad():
            return F.normalize(m(**batch, output_hidden_states=True).hidden_states[-1][:, -1], dim=-1)

    merged = LlavaNextForConditionalGeneration.from_pretrained(tmp_path / "merged", torch_dtype=torch.float32).eval()
    assert_embeddings_match(hf_embed(merged), ours, "merged checkpoint in transformers")
    base = LlavaNextForConditionalGeneration.from_pretrained(checkpoint, torch_dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    assert_embeddings_match(hf_embed(peft_model), ours, "adapter in peft")
    for model in (unime.Model.from_pretrained(tmp_path / "merged"),):
        assert_embeddings_match(model.encode(prompts=[x.prompt for x in inputs], images=[x.image for x in inputs]),
                                ours, "merged checkpoint in unime")
    fresh = unime.Model.from_pretrained(checkpoint)
    assert sorted(fresh.load_adapter(tmp_path / "adapter")) == sorted(t.adapted_modules)
    assert_embeddings_match(fresh.encode(prompts=[x.prompt for x in inputs], images=[x.image for x in inputs]), ours,
                            "adapter in unime")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    assert os.path.exists(tmp_path / "merged" / "tokenizer.json")


def test_training_every_weight(checkpoint, tmp_path):
    """trainable="all" (a student from random weights, as the demo's): every weight moves, checkpoints
    hold the weights, and the merged checkpoint is the trained model for transformers and unime."""
    from transformers import LlavaNextForConditionalGeneration

    t = trainer(checkpoint, "instruct", trainable="all", learning_rate=1e-3, output_dir=str(tmp_path / "run"))
    before = {k: v.detach().clone() for k, v in t.trainable_parameters()}
    assert "decoder.embed_tokens.weight" in before and "vision_tower.patch_embedding" in before
    t.step(instruct_examples(8))
    after = dict(t.trainable_parameters())
    for name in ("decoder.layers.0.self_attn.q_proj.weight", "vision_tower.layers.0.mlp.fc1.weight"):
        assert not torch.equal(before[name], after[name]), name
    saved = t.save_checkpoint()
    assert os.path.exists(os.path.join(saved, "weights.safetensors"))
    with pytest.raises(ValueError, match="no adapters"):
        t.save_adapter(tmp_path / "adapter")
    t.save_merged(tmp_path / "merged")
    t.model.eval()
    inputs = [e.query for e in instruct_examples(4, seed=4)]
    ours = t.model.encode(prompts=[x.prompt for x in inputs], images=[x.image for x in inputs])
    reloaded = unime.Model.from_pretrained(tmp_path / "merged")
    assert_embeddings_match(reloaded.encode(prompts=[x.prompt for x in inputs], images=[x.image for x in inputs]), ours,
                            "fully trained model, merged and reloaded")
    hf = LlavaNextForConditionalGeneration.from_pretrained(tmp_path / "merged", torch_dtype=torch.float32)
    assert torch.equal(hf.language_model.model.layers[0].self_attn.q_proj.weight,
                       after["decoder.layers.0.self_attn.q_proj.weight"].detach())
    resumed = trainer(checkpoint, "instruct", trainable="all", learning_rate=1e-3, output_dir=str(tmp_path / "run"))
    resumed.resume()
    assert resumed.global_step == 1
    assert all(torch.equal(v, after[k]) for k, v in resumed.trainable_parameters())


def test_fit_with_prefetch_is_fit_without(checkpoint, tmp_path):
    """fit() prepares the next step's examples (image files decoded) on a worker thread while a step
    runs: the same batches, losses, skipped examples and adapters as preparing each step in turn, and
    a bad example in raise mode stops the run at the same step."""
    from PIL import Image

    examples = instruct_examples(12, seed=3)
    for k, e in enumerate(examples):  # the images as files, so that there is decoding to do ahead
        side = e.query if e.query.image is not None else e.positive
        path = tmp_path / f"{k}.png"
        Image.fromarray(side.image).save(path)
        side.image = str(path)
    (tmp_path / "5.png").write_bytes(b"not a png")  # example 5's image, in a batch past the first

    threads = {True: [], False: []}

    def run(prefetch, on_error):
        t = trainer(checkpoint, "instruct", batch_size=4, hard_negatives=0, max_steps=6, on_error=on_error)
        prepare = t._prepare

        def recorded(batch):
            threads[prefetch].append(threading.current_thread().name)
            return prepare(batch)

        t._prepare = recorded
        metrics = t.fit(examples, progress=False, prefetch=prefetch)
        return t, metrics

    (a, ahead), (b, straight) = run(True, "skip"), run(False, "skip")
    # Each step prepared once: the first on the loop's thread, the other five ahead on the worker.
    assert [n.startswith("unime-prepare") for n in threads[True]] == [False] + [True] * 5
    assert not any(n.startswith("unime-prepare") for n in threads[False]) and len(threads[False]) == 6
    assert [m["loss"] for m in ahead] == [m["loss"] for m in straight] and len(ahead) == 6
    assert [m["skipped"] for m in ahead] == [m["skipped"] for m in straight]
    assert sum(len(m["skipped"]) for m in ahead) >= 1  # the bad file was met, and skipped
    for (name, x), (_, y) in zip(a.trainable_parameters(), b.trainable_parameters()):
        assert torch.equal(x, y), name

    stops = []
    for prefetch in (True, False):
        t = trainer(checkpoint, "instruct", batch_size=4, hard_negatives=0, max_steps=6)
        with pytest.raises(ValueError, match=r"example ex5: image .*5\.png"):
            t.fit(examples, progress=False, prefetch=prefetch)
        stops.append(t.global_step)
    assert stops[0] == stops[1] == next(i for i, m in enumerate(straight) if m["skipped"])


def test_a_callable_teacher_is_not_run_ahead(checkpoint):
    """A callable teacher is a model: fit() runs it between steps on its own thread, never beside a step."""
    calls = []

    def teacher(texts):
        calls.append(threading.current_thread().name)
        return torch.stack([torch.tensor([float(len(t)), float(t.count(" ")), 1.0, 2.0]) for t in texts])

    t = trainer(checkpoint, "distill", teacher, batch_size=4, max_steps=3)
    metrics = t.fit(distill_examples(12), progress=False)
    assert len(metrics) == 3 and all(np.isfinite(m["loss"]) for m in metrics)
    assert calls == [threading.current_thread().name] * 3
