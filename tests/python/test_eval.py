"""unime.eval end to end on local data in the official formats (real images: Fashion-MNIST from
Debian, scikit-image's photos): each suite's numbers equal a direct computation from model.encode,
bad rows are named by file and line without stopping the run, and runs resume."""

import json
import os

import numpy as np
import pytest
from eval_fixtures import FASHION_CLASSES, PHOTOS, SUGARCREPE, write_fashion_mnist, write_photos
from PIL import Image
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

import unime


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava_eval")
    save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    return unime.Model.from_pretrained(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_data")
    return {**write_fashion_mnist(str(root)), "photos": write_photos(str(root))}


def direct_p1(model, rows, image_dir):
    """MMEB's scorer by hand: embed each row's query and candidates, argmax == 0."""
    hits = []
    for row in rows:
        q = model.encode(prompts=[row["qry_text"]],
                         images=[os.path.join(image_dir, row["qry_img_path"]) if row["qry_img_path"] else None])
        c = model.encode(prompts=row["tgt_text"],
                         images=[os.path.join(image_dir, p) if p else None for p in row["tgt_img_path"]])
        hits.append(int(np.argmax((c @ q[0]).numpy()) == 0))
    return float(np.mean(hits))


def test_mmeb_format_end_to_end(model, data, tmp_path):
    run = unime.eval.Evaluation(model, tmp_path / "run", batch_size=8)
    summary = run.mmeb(data["mmeb_dir"], data["image_dir"], datasets=["FashionMNIST-CLS", "FashionMNIST-T2I"],
                       meta_tasks={"FashionMNIST-CLS": "Classification", "FashionMNIST-T2I": "Retrieval"})
    cls = run.results[("mmeb", "FashionMNIST-CLS")]
    t2i = run.results[("mmeb", "FashionMNIST-T2I")]
    assert cls["metrics"]["precision@1"] == pytest.approx(direct_p1(model, data["cls_rows"], data["image_dir"]))
    assert t2i["metrics"]["precision@1"] == pytest.approx(direct_p1(model, data["t2i_rows"], data["image_dir"]))
    assert cls["rows"] == len(data["cls_rows"]) and t2i["rows"] == len(data["t2i_rows"])
    # the three malformed rows appended to the jsonl are named by file and line; the rest was scored
    file = os.path.join(data["mmeb_dir"], "FashionMNIST-CLS.jsonl")
    n = len(data["cls_rows"])
    errors = {e["where"]: e["message"] for e in cls["errors"]}
    assert set(errors) == {f"{file}:{n + 1}", f"{file}:{n + 2}", f"{file}:{n + 3}"}
    assert "not valid JSON" in errors[f"{file}:{n + 1}"]
    assert "no candidates" in errors[f"{file}:{n + 2}"]
    assert "missing.png" in errors[f"{file}:{n + 3}"]
    assert summary["Classification"] == cls["metrics"]["precision@1"]
    assert summary["Retrieval"] == t2i["metrics"]["precision@1"]
    assert summary["Overall"] == pytest.approx((summary["Classification"] + summary["Retrieval"]) / 2)
    assert np.isnan(summary["VQA"]) and np.isnan(summary["IND"])  # no such datasets here


def test_retrieval_sugarcrepe_zero_shot_equal_direct_computation(model, data, tmp_path):
    photos = data["photos"]
    run = unime.eval.Evaluation(model, tmp_path / "run", batch_size=8)
    got = run.retrieval("photos", photos["retrieval"], photos["image_dir"])
    # by hand: captions x images, positives from the rows
    names = list(PHOTOS)
    images = model.encode(images=[os.path.join(photos["image_dir"], n) for n in names]).numpy()
    captions = [c for n in names for c in PHOTOS[n]]
    owner = np.repeat(np.arange(len(names)), 2)
    scores = model.encode(texts=captions).numpy() @ images.T
    for k in (1, 5):
        t2i = np.mean([owner[i] in np.argsort(-scores[i], kind="stable")[:k] for i in range(len(captions))])
        i2t = np.mean([bool(set(np.argsort(-scores[:, j], kind="stable")[:k]) & set(np.flatnonzero(owner == j)))
                       for j in range(len(names))])
        assert got[f"t2i_R@{k}"] == pytest.approx(t2i) and got[f"i2t_R@{k}"] == pytest.approx(i2t)
    assert got["t2i_R@10"] == 1.0 == got["i2t_R@10"]  # 8 images: everything is in the top 10
    bad = run.results[("retrieval", "photos")]["errors"]
    assert [e["where"] for e in bad] == [f"{photos['retrieval']}:{len(PHOTOS) + 1}"]

    sugar = run.sugarcrepe(photos["sugarcrepe"], photos["image_dir"])
    for subset, items in SUGARCREPE.items():
        v = model.encode(images=[os.path.join(photos["image_dir"], fn) for fn, _, _ in items]).numpy()
        p = (model.encode(texts=[pos for _, pos, _ in items]).numpy() * v).sum(1)
        n = (model.encode(texts=[neg for _, _, neg in items]).numpy() * v).sum(1)
        assert sugar[subset] == pytest.approx(np.mean(p > n))
    assert sugar["Replace"] == sugar["replace_obj"] and sugar["Swap"] == sugar["swap_att"]

    zs = run.zero_shot("fashion-mnist", data["folder"], templates=["a photo of a {}.", "a picture of a {}."],
                       classnames=[c.replace("/", "-") for c in FASHION_CLASSES])
    classes = [c.replace("/", "-") for c in FASHION_CLASSES]
    t = np.stack([model.encode(texts=[f"a photo of a {c}.", f"a picture of a {c}."]).numpy().mean(0)
                  for c in classes])
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    files = [(os.path.join(data["folder"], c, f), i) for i, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(data["folder"], c)))]
    v = model.encode(images=[f for f, _ in files]).numpy()
    assert zs["top1"] == pytest.approx(np.mean(np.argmax(v @ t.T, 1) == [i for _, i in files]))

    markdown = run.report()
    for heading in ("## Image-text retrieval", "## SugarCrepe", "## Zero-shot classification", "## Rows left out"):
        assert heading in markdown
    charts = sorted(os.listdir(tmp_path / "run" / "charts"))
    assert charts == ["retrieval.png", "sugarcrepe.png", "zero_shot.png"]
    for chart in charts:
        with Image.open(tmp_path / "run" / "charts" / chart) as im:
            assert im.size[0] > 200 and im.size[1] > 200


def test_report_tables_charts_and_resume(model, data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run = unime.eval.Evaluation(model, out)
    run.mmeb(data["mmeb_dir"], data["image_dir"], datasets=["FashionMNIST-CLS"],
             meta_tasks={"FashionMNIST-CLS": "Classification"})
    markdown = run.report()
    assert "| Cls | VQA | Ret | Grd | IND | OOD | Overall | Overall (meta-task mean) |" in markdown
    assert model.fingerprint in markdown and "FashionMNIST-CLS" in markdown
    assert sorted(os.listdir(out / "charts")) == ["mmeb_classification.png", "mmeb_summary.png"]
    saved = json.loads((out / "results.json").read_text())
    record = saved["record"]
    assert record["model"]["fingerprint"] == model.fingerprint and record["versions"]["torch"]
    assert (out / "results.md").read_text() == markdown

    # a second run in the same folder reads the finished dataset back instead of encoding again
    def no_encoding(*args, **kwargs):
        raise AssertionError("resume must not re-encode a finished dataset")

    monkeypatch.setattr(model, "encode", no_encoding)
    again = unime.eval.Evaluation(model, out)
    again.mmeb(data["mmeb_dir"], data["image_dir"], datasets=["FashionMNIST-CLS"],
               meta_tasks={"FashionMNIST-CLS": "Classification"})
    key = ("mmeb", "FashionMNIST-CLS")
    assert again.results[key]["metrics"] == run.results[key]["metrics"]


def test_resume_refuses_another_models_results(model, data, tmp_path):
    other_dir = tmp_path / "other_model"
    save_tiny_llava_next_pipeline(other_dir, tokenizer_json("mistral_legacy"), seed=1)
    other = unime.Model.from_pretrained(other_dir)
    assert other.fingerprint != model.fingerprint
    out = tmp_path / "run"
    unime.eval.Evaluation(model, out).retrieval("photos", data["photos"]["retrieval"], data["photos"]["image_dir"])
    with pytest.raises(ValueError) as e:
        unime.eval.Evaluation(other, out).retrieval("photos", data["photos"]["retrieval"], data["photos"]["image_dir"])
    assert model.fingerprint in str(e.value) and other.fingerprint in str(e.value)
    # resume=False recomputes over it
    unime.eval.Evaluation(other, out, resume=False).retrieval("photos", data["photos"]["retrieval"],
                                                              data["photos"]["image_dir"])


def test_bad_arguments_are_named(model, data, tmp_path):
    run = unime.eval.Evaluation(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="ImageNet-1K"):
        run.mmeb(data["mmeb_dir"], data["image_dir"], datasets=["ImageNet-1K"])
    with pytest.raises(ValueError, match="meta_tasks"):
        run.mmeb(data["mmeb_dir"], data["image_dir"], datasets=["FashionMNIST-CLS"], meta_tasks={"x": "Sorting"})
    with pytest.raises(ValueError, match="image_resolution"):
        unime.eval.Evaluation(model, tmp_path, image_resolution="ultra")
