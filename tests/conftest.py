"""Shared test helpers: the Debian Fashion-MNIST that many tests read."""

from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"{FASHION} absent: needs apt-get install -y dataset-fashion-mnist"
)
