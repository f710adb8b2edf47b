"""The evaluation protocol's reference images: the clean test split of the run's source."""

from __future__ import annotations

import numpy as np

from gansweep.config import Config
from gansweep.data.sources import DataSourceError, load_source


def reference_images(cfg: Config) -> tuple[np.ndarray, str]:
    """The clean test split, or for sources without one the clean training split (named as such)."""
    data = cfg.data
    try:
        return load_source(data.name, data.root, split="test", image_size=data.image_size).images, "test"
    except DataSourceError:
        if data.name not in ("image_folder", "parquet"):
            raise
        return load_source(data.name, data.root, split="train", image_size=data.image_size).images, "train"
