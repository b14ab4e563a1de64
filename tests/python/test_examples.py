"""Every example runs on its embedded default."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


@pytest.mark.parametrize("script", ["quickstart.py"])
def test_example_runs(script):
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cosine similarity" in out.stdout
    # The diagonal of a cosine-similarity matrix of normalised vectors is 1.
    rows = [line.split()[-4:] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert len(rows) == 4 and all(abs(float(r[i]) - 1.0) < 1e-3 for i, r in enumerate(rows))


def test_quickstart_model_matches_transformers(tmp_path):
    """The example's hand-written checkpoint is a valid MistralForCausalLM checkpoint."""
    sys.path.insert(0, EXAMPLES)
    import quickstart
    import torch
    from transformers import MistralForCausalLM

    import unime

    path = quickstart.make_tiny_mistral(str(tmp_path / "m"))
    hf = MistralForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()
    ids, mask = quickstart.byte_tokens(quickstart.SENTENCES)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1][:, -1]
    ours = unime.Model.from_pretrained(path).encode_ids(ids, mask, normalize=False)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
