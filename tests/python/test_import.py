"""The package imports cheaply and says what it was built against."""

import subprocess
import sys

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
