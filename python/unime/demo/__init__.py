"""`unime demo`: UniME's two training stages on real data, on a laptop CPU (see run.py)."""

from .run import run_demo

__all__ = ["run_demo"]
