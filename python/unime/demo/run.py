"""UniME's two stages on real data, on a laptop CPU, in a few minutes (`unime demo`).

1. The student, a small LLaVA-NeXT-shaped model with LLaVA-1.6's real tokenizer, starts from random
   weights, so every weight trains (trainable="all"; UniME trains LoRA adapters on a pretrained model).
2. Stage 1 (textual discriminative knowledge distillation) distils all-MiniLM-L6-v2's view of English
   sentences (Debian's fortunes) into the student's language model; agreement with the teacher on
   held-out sentences is the Spearman correlation of their similarity matrices.
3. Stage 2 (hard-negative enhanced instruction tuning) trains on Fashion-MNIST as MMEB-style tasks:
   image -> class description, description -> image, image -> same-class image, with in-batch hard
   negatives and the false-negative filter; a variant trains without hard negatives (plain InfoNCE
   over the whole batch, no filter). Held-out R@1 / R@5 (Fashion-MNIST's test split) before and after.
4. A few searches, and a picture of them with the loss curves.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

import unime
from unime.train import Example, Input, TeacherEmbeddings, TextDataset

from .assets import CLASSES, build_llava_next, fashion_mnist, fortune_sentences, minilm_teacher

IMAGE_PROMPT = "<|image_1|>\nRepresent the given fashion product image.\n"
I2T_PROMPT = "<|image_1|>\nFind a description for the given fashion product image.\n"
I2I_PROMPT = "<|image_1|>\nFind a fashion product image of the same kind as the given one.\n"
T2I_PROMPT = "Find me an image of a fashion product matching the description: {}\n"


# Stage 1's temperature: the paper gives none. At 0.05 (E5-V's) the teacher's row softmax is nearly
# one-hot on the diagonal (a sentence is far more similar to itself than to any other), so the KL says
# little about how the other sentences relate; at 1.0 it does (held-out agreement 0.05 -> 0.18 in 500
# steps here, against 0.03 at 0.05).
STAGE1_TEMPERATURE = 1.0
# Stage 2's false-negative filter: drop in-batch negatives scoring above the positive. UniME's 0.1 margin
# assumes a pretrained model; from random weights every candidate starts within 0.1 of the positive and
# the student collapsed to one vector in our trials (loss stuck at ln 9), while 0 trains. k = 16 of the
# 63 in-batch negatives (UniME: 8 of 1023): 300 steps from random weights gave text -> image R@1 0.83
# (k 16) and 0.73 (plain InfoNCE), image -> image 0.60 and 0.49, image -> text 0.58 and 0.61.
STAGE2_BETA = 0.0


@dataclass
class Settings:
    hidden: int = 128
    layers: int = 2
    sentences: int = 0  # 0: every fortune sentence (about 18,000)
    held_out_sentences: int = 500
    stage1_steps: int = 600
    train_images: int = 6000
    eval_images: int = 1000
    stage2_steps: int = 300
    batch: int = 64


QUICK = Settings(hidden=64, layers=2, sentences=1500, held_out_sentences=200, stage1_steps=40, train_images=800,
                 eval_images=200, stage2_steps=40, batch=32)


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))


def _balanced(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    per = n // 10
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in range(10)])


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman correlation of two equally long vectors (ranks, then Pearson)."""
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()))


def teacher_agreement(model, sentences, teacher_emb) -> float:
    """Spearman correlation of the student's and the teacher's similarity matrices (upper triangles)."""
    student = model.encode(texts=sentences, prompt="distill", batch_size=64, show_progress=False)
    iu = torch.triu_indices(len(sentences), len(sentences), 1)
    return spearman((student @ student.T)[iu[0], iu[1]].cpu(), (teacher_emb @ teacher_emb.T)[iu[0], iu[1]])


def recall(scores: torch.Tensor, relevant: torch.Tensor, ks=(1, 5)) -> dict:
    """scores (Q, C), relevant (Q, C) bool -> {R@k: share of queries with a relevant candidate in the top k}."""
    top = scores.topk(max(ks), dim=1).indices
    hits = relevant.gather(1, top)
    return {f"R@{k}": float(hits[:, :k].any(1).float().mean()) for k in ks}


def evaluate(model, images: list, labels: np.ndarray) -> dict:
    """Held-out retrieval: text -> image (3 descriptions x 10 classes vs the images), image -> text (each
    image vs the 10 canonical descriptions), image -> image (same class, itself excluded)."""
    model.eval()
    labels_t = torch.as_tensor(labels)
    gallery = model.encode(prompts=[IMAGE_PROMPT] * len(images), images=images, batch_size=64, show_progress=False)
    texts = [(c, d) for c, (_, descs) in enumerate(CLASSES) for d in descs]
    t2i_q = model.encode(prompts=[T2I_PROMPT.format(d) for _, d in texts], batch_size=64, show_progress=False)
    t2i = recall(t2i_q @ gallery.T, torch.tensor([c for c, _ in texts])[:, None] == labels_t[None])
    class_text = model.encode(prompts=[descs[0] for _, descs in CLASSES], batch_size=64, show_progress=False)
    i2t_q = model.encode(prompts=[I2T_PROMPT] * len(images), images=images, batch_size=64, show_progress=False)
    i2t = recall(i2t_q @ class_text.T, labels_t[:, None] == torch.arange(10)[None])
    i2i_q = model.encode(prompts=[I2I_PROMPT] * len(images), images=images, batch_size=64, show_progress=False)
    scores = i2i_q @ gallery.T
    scores.fill_diagonal_(-float("inf"))
    i2i = recall(scores, labels_t[:, None] == labels_t[None])
    return {"text->image": t2i, "image->text": i2t, "image->image": i2i}


def stage2_examples(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> list[Example]:
    """MMEB-style pairs over the training images, three tasks in turn."""
    by_class = {c: np.flatnonzero(labels == c) for c in range(10)}
    out = []
    for k, (img, c) in enumerate(zip(images, labels)):
        descs = CLASSES[c][1]
        desc = descs[rng.integers(len(descs))]
        task = k % 3
        if task == 0:
            q, p = Input(prompt=I2T_PROMPT, image=_rgb(img)), Input(prompt=desc)
        elif task == 1:
            q, p = Input(prompt=T2I_PROMPT.format(desc)), Input(prompt=IMAGE_PROMPT, image=_rgb(img))
        else:
            other = images[rng.choice(by_class[c])]
            q, p = Input(prompt=I2I_PROMPT, image=_rgb(img)), Input(prompt=IMAGE_PROMPT, image=_rgb(other))
        out.append(Example(id=str(k), query=q, positive=p))
    return out


def _fmt(r: dict) -> str:
    return "  ".join(f"{task} R@1 {v['R@1']:.3f} R@5 {v['R@5']:.3f}" for task, v in r.items())


def run_demo(out: str = "unime-demo", quick: bool = False) -> int:
    start = time.perf_counter()
    s = QUICK if quick else Settings()
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print("unime demo: UniME's two training stages on real data, on this machine's CPU.")
    print("The student starts from random weights, so the demo trains all of its parameters "
          "(UniME itself trains LoRA adapters on a pretrained model).\n")

    # ---- data and models ----
    sentences = fortune_sentences()
    order = rng.permutation(len(sentences))[: s.sentences or None]
    held = [sentences[i] for i in order[: s.held_out_sentences]]
    train = [sentences[i] for i in order[s.held_out_sentences:]]
    teacher = minilm_teacher()
    teacher_train, teacher_held = teacher(train), teacher(held)
    train_x, train_y = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    tr = _balanced(train_y, s.train_images, rng)
    te = _balanced(test_y, s.eval_images, rng)
    eval_images, eval_labels = [_rgb(test_x[i]) for i in te], test_y[te]
    print(f"data: {len(train)} training and {len(held)} held-out sentences (Debian fortunes); teacher "
          f"all-MiniLM-L6-v2 ({teacher_train.shape[1]}-d); Fashion-MNIST {len(tr)} training images, {len(te)} held-out "
          "test images")
    student = build_llava_next(os.path.join(out, "student"), hidden=s.hidden, layers=s.layers, heads=s.hidden // 32,
                               kv_heads=max(1, s.hidden // 64), vision_hidden=64, vision_layers=3, vision_heads=2,
                               image_size=56, patch_size=14, pinpoints=[[56, 56]])
    model = unime.Model.from_pretrained(student)
    n_params = sum(p.numel() for _, p in model.named_parameters())
    print(f"student: LLaVA-NeXT-shaped, Mistral {s.layers} x {s.hidden} + CLIP 3 x 64 on 56-px tiles, "
          f"{n_params / 1e6:.1f} M parameters, LLaVA-1.6's tokenizer\n")

    # ---- stage 1 ----
    results: dict = {"settings": s.__dict__}
    before = teacher_agreement(model, held, teacher_held)
    ids = [str(i) for i in range(len(train))]
    stage1 = unime.Trainer(model, "distill", teacher=TeacherEmbeddings(teacher_train.numpy(), ids), trainable="all",
                           batch_size=s.batch, max_steps=s.stage1_steps, learning_rate=1e-3, warmup_steps=10,
                           lr_schedule="cosine", distill_temperature=STAGE1_TEMPERATURE, seed=0)
    t = time.perf_counter()
    hist1 = stage1.fit(TextDataset(train, ids), progress=False)
    after = teacher_agreement(model, held, teacher_held)
    results["stage1"] = {"agreement_before": before, "agreement_after": after, "seconds": time.perf_counter() - t,
                         "loss": [m["loss"] for m in hist1]}
    print(f"stage 1 ({s.stage1_steps} steps, {time.perf_counter() - t:.0f} s): agreement with the teacher on held-out "
          f"sentences (Spearman of similarity matrices) {before:.3f} -> {after:.3f}")
    stage1_dir = os.path.join(out, "stage1")
    stage1.save_merged(stage1_dir)

    # ---- stage 2: UniME (hard negatives) and the variant without ----
    base = unime.Model.from_pretrained(stage1_dir)
    results["untrained"] = evaluate(base, eval_images, eval_labels)
    print(f"before stage 2 (random vision tower): {_fmt(results['untrained'])}")
    examples = stage2_examples(train_x[tr], train_y[tr], rng)
    models = {}
    for name, objective in (("hard negatives", dict(hard_negatives=16, false_negative_margin=STAGE2_BETA)),
                            ("no hard negatives", dict(all_in_batch=True, false_negative_margin=1e9))):
        model2 = unime.Model.from_pretrained(stage1_dir)
        trainer = unime.Trainer(model2, "instruct", trainable="all", batch_size=s.batch, max_steps=s.stage2_steps,
                                learning_rate=5e-4, warmup_steps=10, lr_schedule="cosine", temperature=0.05, seed=0,
                                **objective)
        t = time.perf_counter()
        hist = trainer.fit(examples, progress=False)
        r = evaluate(model2, eval_images, eval_labels)
        results[name] = {**r, "seconds": time.perf_counter() - t, "loss": [m["loss"] for m in hist]}
        models[name] = model2
        print(f"stage 2, {name} ({s.stage2_steps} steps, {time.perf_counter() - t:.0f} s): {_fmt(r)}")

    # ---- searches and the picture ----
    unime_model = models["hard negatives"].eval()
    gallery = unime_model.encode(prompts=[IMAGE_PROMPT] * len(eval_images), images=eval_images, batch_size=64,
                                 show_progress=False)
    searches = []
    for text in ("an ankle boot", "a bag or handbag", "a summer dress"):
        q = unime_model.encode(prompts=[T2I_PROMPT.format(text)])
        top = (q @ gallery.T)[0].topk(5).indices.tolist()
        searches.append((text, None, top))
        print(f"search '{text}': " + ", ".join(CLASSES[eval_labels[i]][0] for i in top))
    for qi in (int(np.flatnonzero(eval_labels == 7)[0]), int(np.flatnonzero(eval_labels == 1)[0])):
        q = unime_model.encode(prompts=[I2I_PROMPT], images=[eval_images[qi]])
        scores = (q @ gallery.T)[0]
        scores[qi] = -float("inf")
        top = scores.topk(5).indices.tolist()
        searches.append((f"image of a {CLASSES[eval_labels[qi]][0]}", qi, top))
        print(f"search by an image of a {CLASSES[eval_labels[qi]][0]}: " +
              ", ".join(CLASSES[eval_labels[i]][0] for i in top))
    picture = os.path.join(out, "demo.png")
    _picture(picture, searches, eval_images, eval_labels, results)
    results["wall_seconds"] = time.perf_counter() - start
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    better = all(results["hard negatives"][task]["R@1"] >= results["untrained"][task]["R@1"]
                 for task in ("text->image", "image->text"))
    print(f"\nstage 2 with hard negatives vs without, held-out R@1: "
          f"text->image {results['hard negatives']['text->image']['R@1']:.3f} vs "
          f"{results['no hard negatives']['text->image']['R@1']:.3f}, image->text "
          f"{results['hard negatives']['image->text']['R@1']:.3f} vs "
          f"{results['no hard negatives']['image->text']['R@1']:.3f}"
          f"; {'above' if better else 'not above'} the untrained model")
    print(f"picture: {picture}; numbers: {os.path.join(out, 'results.json')}; "
          f"wall time {results['wall_seconds']:.0f} s")
    return 0


def _picture(path, searches, images, labels, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(searches)
    fig = plt.figure(figsize=(12, 2.2 * rows + 3))
    grid = fig.add_gridspec(rows + 1, 6, height_ratios=[1] * rows + [1.4])
    for r, (title, query_image, top) in enumerate(searches):
        ax = fig.add_subplot(grid[r, 0])
        ax.axis("off")
        if query_image is None:
            ax.text(0.5, 0.5, f'"{title}"', ha="center", va="center", wrap=True, fontsize=10)
        else:
            ax.imshow(images[query_image][:, :, 0], cmap="gray")
            ax.set_title("query", fontsize=9)
        for c, i in enumerate(top):
            ax = fig.add_subplot(grid[r, c + 1])
            ax.imshow(images[i][:, :, 0], cmap="gray")
            ax.set_title(CLASSES[labels[i]][0], fontsize=8)
            ax.axis("off")
    ax = fig.add_subplot(grid[rows, :3])
    ax.plot(results["stage1"]["loss"])
    ax.set_title("stage 1 loss (KL to the teacher's similarities)", fontsize=9)
    ax.set_xlabel("step")
    ax = fig.add_subplot(grid[rows, 3:])
    for name in ("hard negatives", "no hard negatives"):
        ax.plot(results[name]["loss"], label=name)
    ax.set_title("stage 2 loss", fontsize=9)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
