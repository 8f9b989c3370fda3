"""numba compilation for the codec's array loops."""
from __future__ import annotations

from numba import njit

__all__ = ["compiled"]


def compiled(function):
    """numba-compiled `function` (releasing the GIL), cached on disk (next to this file, else in the user's
    cache directory) so that later runs skip the compilation; without any writable cache location, compiled
    anew per run."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return njit(nogil=True)(function)
