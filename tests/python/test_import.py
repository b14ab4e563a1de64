"""The package imports cheaply and says what it was built against."""

import re
import subprocess
import sys

import pytest

import unime


def test_version_and_build_info():
    assert unime.__version__ == "0.1.0"
    assert unime._C.__torch_version__.split("+")[0] == __import__("torch").__version__.split("+")[0]


def test_import_does_not_initialise_cuda():
    code = "import torch, unime; print(torch.cuda.is_initialized())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ops_are_registered():
    import torch

    assert hasattr(torch.ops.unime, "rms_norm")


def test_another_torch_is_refused_saying_what_to_do(monkeypatch):
    # What a user sees with a torch other than the build's (docs/install.md quotes it).
    import torch

    from unime import _build

    monkeypatch.setattr(_build, "_built_torch_version", lambda: "2.10.0+cu128")
    with pytest.raises(ImportError, match=re.escape(f"built against torch 2.10.0+cu128 but torch {torch.__version__} "
                                                    f"is installed")) as info:
        _build.check_torch_version()
    message = str(info.value)
    assert "pip install torch==2.10.0" in message and "--no-binary unime" in message and "docs/install.md" in message
