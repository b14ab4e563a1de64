"""unime.Trainer's data: MMEB jsonl with an image folder, Hugging Face datasets, UniME-V2 score files,
teacher embedding files (safetensors / npy, memory-mapped), the mining helper, and fit()'s log,
callbacks and evaluation hook."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from trainer_fixtures import WORDS, make_checkpoint

import unime
from unime.train import JudgeDataset, MmebDataset, TeacherEmbeddings, TextDataset, mine_candidates
from unime.train.data import Input


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("trainer_data")
    make_checkpoint(path)
    return str(path)


def write_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(n):
        names.append(f"img{i}.png")
        h, w = rng.integers(20, 60, 2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(os.path.join(folder, names[-1]))
    return names


def mmeb_rows(names, seed=0):
    rng = np.random.default_rng(seed)
    return [{"qry": "<|image_1|>\nRepresent the given image for classification\n", "qry_image_path": f"images/{n}",
             "pos_text": " ".join(rng.choice(WORDS, 3)), "pos_image_path": "", "neg_text": "", "neg_image_path": ""}
            for n in names]


class Recorder:
    def __init__(self):
        self.steps, self.evals, self.saves = [], [], []

    def on_step_end(self, trainer, metrics):
        self.steps.append(metrics["step"])

    def on_evaluate(self, trainer, metrics):
        self.evals.append(metrics)

    def on_save(self, trainer, path):
        self.saves.append(path)


def test_fit_on_mmeb_jsonl_with_an_image_folder(checkpoint, tmp_path):
    names = write_images(tmp_path / "images", 8)
    with open(tmp_path / "train.jsonl", "w") as f:
        for row in mmeb_rows(names):
            f.write(json.dumps(row) + "\n")
    recorder = Recorder()
    out = tmp_path / "run"
    trainer = unime.Trainer(unime.Model.from_pretrained(checkpoint), "instruct", batch_size=4, hard_negatives=2,
                            max_steps=4, save_every=2, eval_every=2, output_dir=str(out), lora_r=4,
                            callbacks=[recorder],
                            evaluate=lambda model: {"norm": float(model.encode(texts=["a dog"]).norm())})
    history = trainer.fit(str(tmp_path / "train.jsonl"), progress=False)
    assert [m["step"] for m in history] == [1, 2, 3, 4] == recorder.steps
    assert [e["step"] for e in recorder.evals] == [2, 4] and abs(recorder.evals[0]["norm"] - 1) < 1e-5
    assert [os.path.basename(p) for p in recorder.saves] == ["checkpoint-00000002", "checkpoint-00000004"]
    log = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4] and sum("eval" in r for r in log) == 2
    assert all(np.isfinite(r["loss"]) and r["lr"] > 0 and r["examples"] == 4 for r in log if "loss" in r)
    # Resuming a finished run does nothing more.
    again = unime.Trainer(unime.Model.from_pretrained(checkpoint), "instruct", batch_size=4, hard_negatives=2,
                          max_steps=4, output_dir=str(out), lora_r=4)
    assert again.fit(str(tmp_path / "train.jsonl"), progress=False) == [] and again.global_step == 4


def test_hugging_face_datasets_rows_train(checkpoint, tmp_path):
    import datasets

    names = write_images(tmp_path / "images", 4, seed=1)
    ds = datasets.Dataset.from_list(mmeb_rows(names, seed=1))
    data = MmebDataset(ds, image_root=str(tmp_path))
    assert data[0].query.image == os.path.join(str(tmp_path), "images", names[0])
    trainer = unime.Trainer(unime.Model.from_pretrained(checkpoint), "instruct", batch_size=4, hard_negatives=2,
                            max_steps=1, lora_r=4)
    assert np.isfinite(trainer.fit(data, progress=False)[0]["loss"])


def test_unime_v2_score_file_and_the_mining_helper(checkpoint, tmp_path):
    names = write_images(tmp_path / "images", 6, seed=2)
    rng = np.random.default_rng(2)
    corpus = [Input(prompt=" ".join(rng.choice(WORDS, 4))) for _ in range(12)]
    queries = [Input(prompt="<|image_1|>\nFind an image caption describing the given everyday image.\n",
                     image=str(tmp_path / "images" / n)) for n in names]
    model = unime.Model.from_pretrained(checkpoint)
    q_emb = model.encode(prompts=[q.prompt for q in queries], images=[q.image for q in queries])
    c_emb = model.encode(prompts=[c.prompt for c in corpus])
    strict = mine_candidates(model, queries, corpus, positives=list(range(6)), k=4)  # UniME-V2's "below the positive"
    for i, row in enumerate(strict):
        positive = float(q_emb[i] @ c_emb[i])
        assert i not in row["hard_negative_indices"] and len(row["hard_negatives"]) <= 4
        assert all(s <= positive + 1e-5 for s in row["retrieval_scores"])
        assert "query_pos_scores" not in row  # no judge: the scores are left to fill in
    judged = mine_candidates(model, queries, corpus, positives=list(range(6)), k=4, margin=2.0,
                             judge=lambda q, c: 0.9 if c is corpus[queries.index(q)] else 0.3 + 0.01 * len(c.prompt))
    for i, row in enumerate(judged):
        assert i not in row["hard_negative_indices"] and len(row["hard_negatives"]) == 4
        assert row["retrieval_scores"] == sorted(row["retrieval_scores"], reverse=True)
        assert row["query_pos_scores"] == 0.9 and len(row["hard_negatives_scores"]) == 4
    with open(tmp_path / "scores.json", "w") as f:
        json.dump(judged, f)
    data = JudgeDataset.from_json(tmp_path / "scores.json", num_negatives=3)
    assert len(data[0].candidates) == 4 and data[0].scores[0] == 0.9
    trainer = unime.Trainer(model, "judge", batch_size=6, max_steps=1, lora_r=4)
    assert np.isfinite(trainer.fit(data, progress=False)[0]["loss"])
    with pytest.raises(ValueError, match="num_negatives is 5"):
        JudgeDataset(judged, num_negatives=5)[0]


@pytest.mark.parametrize("fmt", ["safetensors", "npy"])
def test_teacher_files_are_memory_mapped_and_keyed_by_id(tmp_path, fmt):
    table = torch.randn(50, 7)
    ids = np.arange(100, 150)
    if fmt == "safetensors":
        unime.save_safetensors(tmp_path / "t.safetensors", {"embeddings": table, "ids": torch.from_numpy(ids)})
        teacher = TeacherEmbeddings.from_file(tmp_path / "t.safetensors")
    else:
        np.save(tmp_path / "t.npy", table.numpy())
        np.save(tmp_path / "t.ids.npy", ids)
        teacher = TeacherEmbeddings.from_file(tmp_path / "t.npy")
        assert isinstance(teacher.embeddings, np.memmap)
    assert teacher.dim == 7 and len(teacher) == 50
    torch.testing.assert_close(teacher.lookup(["103", "100"]), table[[3, 0]])
    with pytest.raises(KeyError, match="teacher id '7' is not in"):
        teacher.lookup(["7"])
    with pytest.raises(FileNotFoundError):
        TeacherEmbeddings.from_file(tmp_path / "missing.npy")


def test_stage1_with_a_teacher_file_and_jsonl_texts(checkpoint, tmp_path):
    with open(tmp_path / "nli.jsonl", "w") as f:
        for i in range(8):
            f.write(json.dumps({"id": f"s{i}", "text": f"sentence {i} " + " ".join(WORDS[i : i + 3])}) + "\n")
    data = TextDataset.from_jsonl(tmp_path / "nli.jsonl")
    np.save(tmp_path / "teacher.npy", np.random.default_rng(0).standard_normal((8, 33)).astype(np.float32))
    np.save(tmp_path / "teacher.ids.npy", np.array([f"s{i}" for i in range(8)]))
    teacher = TeacherEmbeddings.from_file(tmp_path / "teacher.npy")
    trainer = unime.Trainer(unime.Model.from_pretrained(checkpoint), "distill", teacher=teacher, batch_size=4,
                            max_steps=2, lora_r=4, distill_template="{text} Summary above sentences in one word: \n")
    history = trainer.fit(data, progress=False)
    assert len(history) == 2 and all(np.isfinite(m["loss"]) for m in history)
