"""`unime search --show`: the query and its results as one picture."""

from __future__ import annotations

import os
import textwrap
from typing import Any, Optional, Sequence


def _image_of(hit: Any) -> Optional[str]:
    """A result's image: metadata["image"], or its id when that is a path on disk."""
    meta = hit.metadata or {}
    for candidate in (meta.get("image"), hit.id):
        if isinstance(candidate, str) and os.path.isfile(candidate):
            return candidate
    return None


def save_grid(path: str, *, query_text: Optional[str], query_image: Optional[str], hits: Sequence[Any],
              columns: int = 5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = 1 + (len(hits) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    query = axes[0][0]
    if query_image:
        with Image.open(query_image) as im:
            query.imshow(im.convert("RGB"))
    if query_text:
        query.text(0.5, -0.08 if query_image else 0.5, "\n".join(textwrap.wrap(query_text, 28)),
                   transform=query.transAxes, ha="center", va="top" if query_image else "center", fontsize=9)
    query.set_title("query", fontsize=10, fontweight="bold")
    for i, hit in enumerate(hits):
        ax = axes[1 + i // columns][i % columns]
        image = _image_of(hit)
        if image:
            with Image.open(image) as im:
                ax.imshow(im.convert("RGB"))
        else:
            label = (hit.metadata or {}).get("text") or str(hit.id)
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(str(label), 24)[:6]), ha="center", va="center", fontsize=8,
                    transform=ax.transAxes)
        ax.set_title(f"{i + 1}. {hit.score:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
