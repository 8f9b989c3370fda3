"""Writing files atomically: a reader (or a crash) never sees a half-written file under its real name.

Everything the toolkit writes (checkpoints, ONNX models, JSON results and metrics) goes through
`atomic_write`: the data is written to a hidden temporary file in the destination's folder, flushed to
disk, and renamed over the destination in one step (os.replace is atomic within a file system). On any
failure, Ctrl-C included, the temporary file is removed and the destination is left as it was.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterator

__all__ = ["atomic_write", "write_json", "write_text", "write_bytes"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, text: bool = False) -> Iterator[IO]:
    """`with atomic_write(path) as f: f.write(...)`: f is a binary (or, with text=True, UTF-8 text) file
    that becomes `path` when the block ends without an exception. Creates the folder if needed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=folder)
    try:
        # mkstemp makes the file private (0600); give it the permissions an ordinary new file would get.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(obj: Any, path: str | os.PathLike, indent: int | None = None) -> None:
    """json.dump `obj` to `path` atomically."""
    with atomic_write(path, text=True) as f:
        json.dump(obj, f, indent=indent)


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, text=True) as f:
        f.write(text)


def write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path) as f:
        f.write(data)
