"""A PNG of augmented samples, like the seed's 3x3 ImageDataGenerator figure.

Row 0 shows the original images; each further row one augmented draw of the same images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.train.augment import build_augmentation
from bench.data.pipeline import preprocess


def augment_preview(dataset: Any, config: dict[str, Any], out: Path | str, *, n_images: int = 6,
                    n_draws: int = 3, seed: int = 0, split: str = "train",
                    image_size: tuple[int, int] | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aug = build_augmentation(config, seed=seed)
    if aug is None:
        raise ValueError("the augmentation config is empty: nothing to preview; give e.g. "
                         "--augment '{\"rotation_range\": 20, \"horizontal_flip\": true}'")
    x, y = dataset.numpy(split)
    x, y = x[:n_images], y[:n_images]
    images = preprocess(x, image_size, "resize", None)
    rows = [np.asarray(images)] + [np.asarray(aug(images, training=True)) for _ in range(n_draws)]
    fig, axes = plt.subplots(len(rows), n_images, figsize=(1.6 * n_images, 1.7 * len(rows)),
                             squeeze=False)
    gray = images.shape[-1] == 1
    for r, batch in enumerate(rows):
        for c in range(n_images):
            ax = axes[r][c]
            img = np.clip(batch[c], 0, 1)
            ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None,
                      vmin=0, vmax=1, interpolation="none")
            ax.set_title(dataset.class_names[int(y[c])] if r == 0 else f"draw {r}", fontsize=8)
            ax.axis("off")
    fig.suptitle(", ".join(f"{k}={v}" for k, v in config.items()), fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
