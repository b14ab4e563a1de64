"""Memory is bounded by input size: a 200,000-character text and a 50-megapixel image are encoded
(or refused with an error naming them) in a child process whose peak RSS is measured.

The model is the tiny LLaVA-NeXT with Mistral's sliding window of 4096 tokens, the configuration in
which a dense (n, n) attention mask once made one long text allocate 12 GB here (80 GB at Mistral-7B's
32 heads). Bounds are generous multiples of what was measured (docs/encode.md).
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

RSS_BOUND_MB = 1500


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava_window")
    save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    config = json.loads((path / "config.json").read_text())
    config["text_config"]["sliding_window"] = 4096
    (path / "config.json").write_text(json.dumps(config))
    return path


def run_child(code: str) -> dict:
    """Runs `code` in a fresh interpreter that prints one JSON line; adds the child's peak RSS (MB)."""
    # VmHWM, not ru_maxrss: after fork + exec ru_maxrss keeps the parent's (pytest's) high-water mark.
    script = textwrap.dedent(code) + textwrap.dedent("""
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
        result["peak_rss_mb"] = int(hwm.split()[1]) / 1024
        print(json.dumps(result))
    """)
    proc = subprocess.run([sys.executable, "-c", "import json\nresult = {}\n" + script], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.memory_bound
def test_a_200000_character_text_is_encoded_blockwise_or_refused(model_dir):
    result = run_child(f"""
        import random, torch, unime
        model = unime.Model.from_pretrained({str(model_dir)!r})
        random.seed(0)
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"]
        text = " ".join(random.choice(words) for _ in range(40000))[:200000]
        result["chars"] = len(text)
        try:
            model.encode(texts=[text])
        except ValueError as e:
            result["refused"] = str(e)
        emb = model.encode(texts=[text], truncate=True)
        result["finite"] = bool(torch.isfinite(emb).all())
        result["norm"] = float(emb.norm())
    """)
    assert result["chars"] == 200000
    assert result["refused"].startswith("input 0: ") and "more than max_length 32768" in result["refused"]
    assert result["finite"] and abs(result["norm"] - 1) < 1e-5  # 32768 tokens through a 4096-token window
    assert result["peak_rss_mb"] < RSS_BOUND_MB, result


@pytest.mark.memory_bound
def test_a_50_megapixel_image_is_encoded_or_refused_within_the_bound(model_dir, tmp_path):
    h, w = 7000, 7200  # 50.4 MP; a smooth picture keeps the JPEG small and quick to write
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    rgb = np.stack([np.broadcast_to(y, (h, w)), np.broadcast_to(x, (h, w)), (y + x) / 2], axis=-1).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(rgb).save(path, quality=80)
    del rgb
    result = run_child(f"""
        import torch, unime
        model = unime.Model.from_pretrained({str(model_dir)!r})
        emb = model.encode(images=[{str(path)!r}])
        result["finite"] = bool(torch.isfinite(emb).all())
        try:
            model.encode(images=[{str(path)!r}], max_pixels=10_000_000)
        except ValueError as e:
            result["refused"] = str(e)
    """)
    assert result["finite"]
    # The pixel cap is read from the header before decoding; the error names the input and its file.
    assert result["refused"].startswith(f"image 0 ({path})"), result["refused"]
    assert "50400000" in result["refused"].replace(",", ""), result["refused"]
    assert result["peak_rss_mb"] < RSS_BOUND_MB, result
