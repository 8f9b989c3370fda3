"""Reading and writing checkpoint files safely.

Everything is loaded with `torch.load(..., map_location="cpu", weights_only=True)`: a checkpoint can hold
tensors and plain Python values, never code. Everything we write holds only those (the config goes in as
a YAML string), and is written atomically (temporary file + rename), so an interrupted save never leaves
a half-written file under the real name.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import torch

from ..fileio import atomic_write

__all__ = ["CheckpointError", "read_checkpoint", "atomic_save"]

# Names listed in one error message, at most; the rest are counted.
_MAX_LISTED = 20


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, is unsafe, or does not fit the model; the message (one line) says which and
    why. `details`: more lines where there is more to say (every missing or unexpected key), else ""."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def read_checkpoint(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True and readable errors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file (it contains Python objects other than "
            f"tensors and plain values, which could run code when unpickled). Detail: {first}"
        ) from None
    except Exception as e:  # torch raises many types for a damaged file (RuntimeError, EOFError, IndexError ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: damaged or not a PyTorch file ({first})") from None


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def _listing(items: list[str], limit: int = _MAX_LISTED) -> str:
    """The first `limit` of `items`, comma-separated, and how many more there are (for error messages)."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
