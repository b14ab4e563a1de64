"""Checks that the installed torch is the one unime._C was compiled against.

LibTorch has no stable C++ ABI: an extension built against torch X.Y crashes or fails to load with
another version, so we compare before importing the extension and say what to do.
"""

import importlib.util
import pathlib

import torch


def _built_torch_version() -> str | None:
    # Read the version the build recorded next to the module, without importing the module.
    marker = pathlib.Path(__file__).with_name("_torch_version.txt")
    if marker.exists():
        return marker.read_text().strip()
    return None


def check_torch_version() -> None:
    if importlib.util.find_spec("unime._C") is None:
        raise ImportError(
            "unime._C (the compiled core) is missing: install unime with pip "
            "(`pip install --no-build-isolation .` from a checkout) rather than importing the source tree."
        )
    built = _built_torch_version()
    if built is None:
        return
    if built.split("+")[0] != torch.__version__.split("+")[0]:
        raise ImportError(
            f"unime was built against torch {built} but torch {torch.__version__} is installed, and LibTorch "
            f"extensions only load with the torch they were built against. Install that torch "
            f"(pip install torch=={built.split('+')[0]}), or build unime from source against this one: "
            f"pip install --no-build-isolation --no-deps --force-reinstall --no-binary unime unime "
            f"(`pip install --no-build-isolation .` in a checkout). See docs/install.md."
        )
