"""Plain-PyTorch references that the fast paths are tested against (no unime code here)."""
