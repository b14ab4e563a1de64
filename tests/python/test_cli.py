"""The `unime` command line: encode to shards (resumable, bad inputs skipped), index, search, eval;
--help examples and exit codes scripts can rely on."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from eval_fixtures import PHOTOS, write_photos
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

import unime
from unime.cli import main
from unime.shards import encode_to_shards, read_inputs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model_dir = root / "model"
    save_tiny_llava_next_pipeline(model_dir, tokenizer_json("mistral_legacy"))
    photos = write_photos(str(root))
    corpus = root / "corpus.jsonl"
    with open(corpus, "w") as f:
        for name, captions in PHOTOS.items():
            f.write(json.dumps({"id": name, "image": os.path.join(photos["image_dir"], name)}) + "\n")
            f.write(json.dumps({"id": f"{name}#0", "text": captions[0]}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"id": "gone", "image": "no_such_image.png"}) + "\n")
        f.write(json.dumps({"id": "pair", "text": "what is this?", "image": os.path.join(photos["image_dir"],
                                                                                           "coffee.png")}) + "\n")
    return {"model": str(model_dir), "photos": photos, "corpus": str(corpus), "root": root,
            "unime": unime.Model.from_pretrained(model_dir)}


def test_help_shows_examples_and_bad_usage_exits_2(capsys):
    for command in ("encode", "index", "search", "eval", "train", "demo"):
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0
        assert "example" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["encode"])  # --out and --model missing
    assert e.value.code == 2
    # the installed console script and python -m unime run the same entry point
    out = subprocess.run([sys.executable, "-m", "unime", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Exit codes" in out.stdout


def read_shards(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    vectors = np.concatenate([np.load(os.path.join(folder, s["file"])) for s in manifest["shards"]])
    ids = [json.loads(line) for s in manifest["shards"] for line in open(os.path.join(folder, s["ids"]))]
    return manifest, vectors, ids


def test_encode_writes_shards_and_names_skipped_inputs(setup, tmp_path, capsys):
    out = tmp_path / "emb"
    code = main(["encode", setup["corpus"], "--model", setup["model"], "--out", str(out), "--shard-size", "4",
                 "--quiet"])
    assert code == 3  # done, with skipped inputs
    manifest, vectors, ids = read_shards(out)
    assert manifest["complete"] and manifest["count"] == len(ids) == vectors.shape[0] == 2 * len(PHOTOS) + 1
    assert manifest["model"]["fingerprint"] == setup["unime"].fingerprint and manifest["dim"] == 48
    skipped = [json.loads(line) for line in open(out / "skipped.jsonl")]
    assert [s["id"] for s in skipped] == [f"{setup['corpus']}:{2 * len(PHOTOS) + 1}", "gone"]
    assert "malformed" in skipped[0]["reason"] and "no_such_image.png" in skipped[1]["source"] + skipped[1]["reason"]
    # the vectors are model.encode's
    records = [r for r in read_inputs([setup["corpus"]]) if r.error is None and r.id != "gone"]
    direct = setup["unime"].encode([r.text for r in records], [r.image for r in records], output="numpy")
    assert [r.id for r in records] == ids
    np.testing.assert_allclose(vectors, direct, atol=1e-6)
    assert "skipped" in capsys.readouterr().out


def test_encode_resumes_after_interruption_with_the_same_output(setup, tmp_path):
    model = setup["unime"]
    records = list(read_inputs([setup["corpus"]]))
    whole = tmp_path / "whole"
    encode_to_shards(model, records, whole, shard_size=3, show_progress=False)

    def interrupted():
        for i, r in enumerate(records):
            if i == 7:
                raise KeyboardInterrupt  # killed half-way through shard 2
            yield r

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        encode_to_shards(model, interrupted(), part, shard_size=3, show_progress=False)
    assert len(json.load(open(part / "manifest.json"))["shards"]) == 2
    first = os.path.getmtime(part / "shard-00000.npy")
    calls = []
    original = model.encode

    def counting(*args, **kwargs):
        calls.append(len(args[0]) if args else 0)
        return original(*args, **kwargs)

    model.encode = counting
    try:
        encode_to_shards(model, records, part, shard_size=3, show_progress=False)
    finally:
        del model.encode
    assert os.path.getmtime(part / "shard-00000.npy") == first  # finished shards were not recomputed
    assert sum(calls) <= len(records) - 6
    m1, v1, i1 = read_shards(whole)
    m2, v2, i2 = read_shards(part)
    assert i1 == i2 and m1["skipped"] == m2["skipped"]
    np.testing.assert_array_equal(v1, v2)
    assert open(whole / "skipped.jsonl").read() == open(part / "skipped.jsonl").read()
    other = tmp_path / "other"
    encode_to_shards(model, records[:3], other, shard_size=3, inputs_key="a", show_progress=False)
    with pytest.raises(ValueError, match="other settings"):
        encode_to_shards(model, records[:3], other, shard_size=3, inputs_key="b", show_progress=False)


def test_index_and_search_commands(setup, tmp_path, capsys):
    emb, idx = tmp_path / "emb", tmp_path / "idx"
    assert main(["encode", setup["corpus"], "--model", setup["model"], "--out", str(emb), "--quiet"]) == 3
    assert main(["index", str(emb), "--out", str(idx)]) == 0
    capsys.readouterr()
    grid = tmp_path / "grid.png"
    assert main(["search", str(idx), "--model", setup["model"], "--text", PHOTOS["chelsea.png"][0], "-k", "3",
                 "--json", "--show", str(grid)]) == 0
    printed = capsys.readouterr().out.splitlines()
    hits = json.loads(printed[0])
    assert len(hits) == 3 and hits[0]["id"] == "chelsea.png#0"  # the caption itself is in the corpus
    query = setup["unime"].encode(texts=[PHOTOS["chelsea.png"][0]], output="numpy")[0]
    _, vectors, ids = read_shards(emb)
    best = np.argsort(-(vectors @ query), kind="stable")[:3]
    assert [h["id"] for h in hits] == [ids[i] for i in best]
    assert os.path.getsize(grid) > 10_000
    # another model is refused, exit 1 with both fingerprints named
    other = tmp_path / "other_model"
    save_tiny_llava_next_pipeline(other, tokenizer_json("mistral_legacy"), seed=2)
    assert main(["search", str(idx), "--model", str(other), "--text", "a cat"]) == 1
    err = capsys.readouterr().err
    assert setup["unime"].fingerprint in err and unime.Model.from_pretrained(other).fingerprint in err


def test_eval_command_writes_report_and_flags_left_out_rows(setup, tmp_path, capsys):
    photos = setup["photos"]
    out = tmp_path / "run"
    code = main(["eval", "retrieval", "--model", setup["model"], "--out", str(out), "--name", "photos", "--data",
                 photos["retrieval"], "--images", photos["image_dir"], "--quiet"])
    assert code == 3  # the fixture's malformed row was left out
    printed = capsys.readouterr().out
    assert "## Image-text retrieval" in printed and (out / "results.md").read_text() in printed
    assert (out / "charts" / "retrieval.png").is_file()
    assert main(["eval", "sugarcrepe", "--model", setup["model"], "--out", str(out), "--data", photos["sugarcrepe"],
                 "--images", photos["image_dir"], "--quiet", "--no-charts"]) == 3  # the folder still holds that row
    report = (out / "results.md").read_text()
    assert "## Image-text retrieval" in report and "## SugarCrepe" in report  # both invocations' results
    assert main(["eval", "mmeb", "--model", setup["model"], "--out", str(out), "--data", str(tmp_path),
                 "--quiet"]) == 1
    assert "none of MMEB's 36 datasets" in capsys.readouterr().err


def test_encode_threads_are_shared_among_the_processes_of_a_machine(capsys):
    """encode's default threads (num_threads=0, unime encode's default) are usable_cores()."""
    from unime.images import usable_cores

    cores = len(os.sched_getaffinity(0))  # the process's affinity mask
    assert usable_cores({}) == cores
    pinned = cores < os.cpu_count()  # a launcher pinned this process already: its mask is its share
    assert usable_cores({"LOCAL_WORLD_SIZE": "2"}) == (cores if pinned else max(1, cores // 2))
    assert usable_cores({"LOCAL_WORLD_SIZE": str(4 * cores)}) == (cores if pinned else 1)
    with pytest.raises(SystemExit):
        main(["encode", "--texts", "t.txt", "--out", "o", "--model", "m", "--num-threads", "-1"])
    assert "--num-threads: must be >= 0, got -1" in capsys.readouterr().err


def test_encode_threads_are_not_a_setting_of_the_folder(setup, tmp_path):
    """num_threads does not change the vectors: not recorded, and a folder whose manifest recorded it
    (as encode_to_shards did when it went through **encode_options) still resumes."""
    model = setup["unime"]
    records = list(read_inputs([setup["corpus"]]))
    out = tmp_path / "out"
    first = encode_to_shards(model, records, out, shard_size=3, show_progress=False, num_threads=1)
    assert "num_threads" not in first["options"]
    manifest = json.load(open(out / "manifest.json"))
    manifest["options"]["num_threads"] = 1  # as written before
    (out / "manifest.json").write_text(json.dumps(manifest))
    again = encode_to_shards(model, records, out, shard_size=3, show_progress=False, num_threads=2)
    assert again["count"] == first["count"] and again["shards"] == first["shards"]
