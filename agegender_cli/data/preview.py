"""A figure of the preprocessing stages for a few images (like the report's Figure 2.2)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agegender_cli.fileio import atomic_write_bytes
from agegender_cli.ownership import MARK


def save_stage_figure(rows: Sequence[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> Path:
    """rows: (image name, [(stage name, image)]) -> one row of panels per image, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(len(stages) for _, stages in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.4 * n_cols, 2.6 * len(rows)), squeeze=False)
    for r, (name, stages) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(stages):
                continue
            title, image = stages[c]
            if image.ndim == 3:
                ax.imshow(image[..., ::-1])
            else:
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(title if r == 0 else "", fontsize=9)
        axes[r][0].text(-0.05, 0.5, name, transform=axes[r][0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": MARK.decode()})
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
