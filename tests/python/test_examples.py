"""Every example runs on its embedded default, and what it builds is what transformers would build."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

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
    assert (ours - ref).abs().max() <= 1e-4
    assert F.cosine_similarity(ours, ref).min() >= 0.99999
