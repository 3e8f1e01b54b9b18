"""Small array helpers shared by the layers (no solver logic)."""

from __future__ import annotations

import numpy as np

#: Byte alignment of the data's own copy. JAX reads 64-byte aligned host arrays in place on
#: the CPU (no second copy of the data on the device).
ALIGNMENT = 64

#: Rows per block when a check runs over a large array (bounded temporaries).
BLOCK_ROWS = 2**16


def readonly(a) -> np.ndarray:
    """A float64 copy of ``a`` that cannot be written to (results are immutable)."""
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def aligned_copy(a, dtype=np.float64) -> np.ndarray:
    """A C-contiguous copy of ``a`` in ``dtype``, starting on an ``ALIGNMENT``-byte boundary.

    Parameters
    ----------
    a : array-like
        The values.
    dtype : numpy dtype, default float64
        The dtype of the copy.

    Returns
    -------
    ndarray
        A new, writeable array (the caller freezes it).
    """
    a = np.asarray(a)
    dtype = np.dtype(dtype)
    nbytes = a.size * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = -buffer.ctypes.data % ALIGNMENT
    out = buffer[offset : offset + nbytes].view(dtype).reshape(a.shape)
    for start in range(0, max(len(out), 1), BLOCK_ROWS):  # bounded conversion temporaries
        out[start : start + BLOCK_ROWS] = a[start : start + BLOCK_ROWS]
    return out


def all_finite(a: np.ndarray) -> bool:
    """Whether every entry of ``a`` is finite, checked a block of rows at a time."""
    return all(
        np.isfinite(a[start : start + BLOCK_ROWS]).all() for start in range(0, len(a), BLOCK_ROWS)
    )
