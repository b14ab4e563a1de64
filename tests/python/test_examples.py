"""Every example runs on its embedded default, and what it builds is what transformers would build."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from tolerances import assert_embeddings_match

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def test_quickstart_runs_and_prints_a_similarity_matrix():
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "quickstart.py")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert "cosine similarity" in out.stdout
    rows = [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert len(rows) == 4 and all(len(r) == 4 for r in rows)
    assert all(-1.0 <= float(v) <= 1.0 for r in rows for v in r)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    sys.path.insert(0, EXAMPLES)
    import quickstart

    path = quickstart.make_tiny_llava_next(str(tmp_path_factory.mktemp("qs") / "m"))
    return quickstart, path


def test_quickstart_pipeline_matches_transformers_on_real_photos(quickstart):
    """Real photos at LLaVA-1.6's real tile size (336 px, anyres grids), the real tokenizer: the
    embeddings unime.encode gives equal those of LlavaNextProcessor + LlavaNextForConditionalGeneration."""
    qs, path = quickstart
    from transformers import (LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor,
                              PreTrainedTokenizerFast)

    import unime

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"), bos_token="<s>",
                                  eos_token="</s>", unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                  model_input_names=["input_ids", "attention_mask"])
    processor = LlavaNextProcessor(image_processor=LlavaNextImageProcessor.from_pretrained(path), tokenizer=tok,
                                   patch_size=14, vision_feature_select_strategy="default", image_token="<image>",
                                   num_additional_image_tokens=1)
    hf = LlavaNextForConditionalGeneration.from_pretrained(path, torch_dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    images = qs.sample_images()
    prompts = ["[INST] <image>\nSummary above image in one word: [/INST]"] * len(images)
    inputs = processor(text=prompts, images=images, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = F.normalize(hf(**inputs, output_hidden_states=True).hidden_states[-1][:, -1], dim=-1)
    ours = unime.encode(unime.Model.from_pretrained(path), images=images)
    assert_embeddings_match(ours, ref, "quickstart pipeline")


def test_cpp_example_encodes_without_python_like_unime_encode(tmp_path):
    """examples/cpp/encode_main.cc (built by CMake with the tests): a C++ program loads the checkpoint,
    builds the batch and embeds texts, images and a pair; its vectors equal unime.encode's (1e-6)."""
    import numpy as np
    from PIL import Image
    from tiny_models import save_tiny_llava_next_pipeline
    from tokenizer_assets import tokenizer_json

    import unime

    build = os.environ.get("UNIME_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "cmake"))
    binary = os.path.join(build, "examples", "unime_encode_example")
    assert os.path.exists(binary), f"{binary} missing: build with tools/bootstrap.sh --with-tests (examples on)"
    path = tmp_path / "model"
    save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 70), (61, 23)]]
    files = []
    for k, a in enumerate(arrays):
        files.append(str(tmp_path / f"im{k}.ppm"))
        Image.fromarray(a).save(files[-1])
    instruction = "Represent the given image with the following question:"
    out = tmp_path / "emb.safetensors"
    args = [binary, str(path), str(out), "--pair", "--text", "A dog runs.", "--image", files[0],
            "--text", "Ünïcödé 数字", "--image", files[1], "--text", "What is it?", "--instruction", instruction]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    ours = unime.load_safetensors(out)["embeddings"]
    # --pair: "A dog runs." + image 0 form one input, "Ünïcödé 数字" + image 1 another, then a text with an instruction.
    model = unime.Model.from_pretrained(path)
    ref = model.encode(["A dog runs.", "Ünïcödé 数字", "What is it?"], [arrays[0], arrays[1], None],
                       instruction=[None, None, instruction])
    assert ours.shape == ref.shape == (3, model.hidden_size)
    assert (ours - ref).abs().max() <= 1e-6
    bad = subprocess.run([binary, str(path), str(out), "--image", str(tmp_path / "missing.ppm")], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and "missing.ppm: cannot open" in bad.stderr


def test_training_notebook_runs_both_stages():
    """examples/train_two_stages.ipynb, executed as a user would (a Jupyter kernel): both stages train,
    the losses fall, and the trained model embeds."""
    import nbclient
    import nbformat

    nb = nbformat.read(os.path.join(EXAMPLES, "train_two_stages.ipynb"), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": EXAMPLES}})
    client.execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    losses = {}
    for line in text.splitlines():
        for stage in ("stage-1", "stage-2"):
            if line.startswith(stage + " loss:"):
                losses[stage] = [float(v) for v in line.split("[", 1)[1].rstrip("]").split(",")]
    assert set(losses) == {"stage-1", "stage-2"}
    assert losses["stage-1"][-1] < 0.2 * losses["stage-1"][0]
    assert min(losses["stage-2"][-3:]) < losses["stage-2"][0]
    assert "images matched to their captions" in text


def test_demo_runs_offline_and_reports_both_stages(tmp_path):
    """`unime demo --quick`: the README's main job at a smaller size, on the real data the bootstrap
    installs (Debian's fortunes and Fashion-MNIST, all-MiniLM-L6-v2 from its package), offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "unime", "demo", "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trains all of its parameters" in out.stdout
    import json

    results = json.load(open(tmp_path / "results.json"))
    assert set(results) >= {"stage1", "untrained", "hard negatives", "no hard negatives", "wall_seconds"}
    for name in ("untrained", "hard negatives", "no hard negatives"):
        for task in ("text->image", "image->text", "image->image"):
            assert 0 <= results[name][task]["R@1"] <= results[name][task]["R@5"] <= 1
    # Each stage lowers its loss: the mean of its last five steps below that of its first five (single
    # steps of the hard-negative loss jump by 0.3 at this size, so one step against one step is noise).
    for stage in ("stage1", "hard negatives", "no hard negatives"):
        loss = results[stage]["loss"]
        assert len(loss) >= 10 and sum(loss[-5:]) < sum(loss[:5]), (stage, loss)
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_evaluate_and_search_notebook_runs():
    """examples/evaluate_and_search.ipynb, executed in a Jupyter kernel: it evaluates (MMEB format on
    Fashion-MNIST, Flickr-format retrieval), writes the report and charts, and searches an index."""
    import nbclient
    import nbformat

    nb = nbformat.read(os.path.join(EXAMPLES, "evaluate_and_search.ipynb"), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": EXAMPLES}})
    client.execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "## MMEB (Precision@1)" in text and "## Image-text retrieval" in text
    assert "MMEB classification P@1:" in text and "search hits after load:" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the chart and the search grid
