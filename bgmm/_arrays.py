"""Small array helpers shared by the layers (no solver logic)."""

from __future__ import annotations

import numpy as np


def readonly(a) -> np.ndarray:
    """A float64 copy of ``a`` that cannot be written to (results are immutable)."""
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a
