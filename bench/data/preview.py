"""A PNG grid of samples with their class names, like the seed tutorial's 3x3 plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_preview(ds, out: str | Path, split: str = "train", image_size=None, resize_method: str = "resize",
                  rows: int = 3, cols: int = 3) -> Path:
    """Draw the first rows*cols images of `split` as the model would see them
    (after resize or pad to `image_size`) and save a PNG to `out`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    count = rows * cols
    images, labels = next(iter(ds.pipeline(split, batch_size=count, image_size=image_size,
                                           resize_method=resize_method, limit=count)))
    images, labels = images.numpy(), labels.numpy()
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows))
    for ax, i in zip(np.ravel(axes), range(count)):
        ax.axis("off")
        if i >= len(images):
            continue
        img = images[i]
        gray = img.shape[-1] == 1
        ax.imshow(img.squeeze(-1) if gray else img, cmap="gray" if gray else None,
                  vmin=0.0, vmax=1.0, interpolation="none")
        ax.set_title(f"{ds.class_names[labels[i]]} ({labels[i]})", fontsize=9)
    h, w = images.shape[1:3]
    fig.suptitle(f"{ds.name} {split}, {w}x{h}" + (f" ({resize_method})" if image_size else ""), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
