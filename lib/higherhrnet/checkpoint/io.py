"""Reading and writing checkpoint files safely.

Everything is loaded with `torch.load(..., map_location="cpu", weights_only=True)`: a checkpoint can hold
tensors and plain Python values, never code. Everything we write holds only those (the config goes in as
a YAML string), and is written atomically (temporary file + rename), so an interrupted save never leaves
a half-written file under the real name.

Files that Python 2 wrote (PyTorch's legacy format, before 1.6) can hold integers in a text opcode (INT) that
torch's weights_only unpickler does not read, though they are plain values: Python 2 pickles an int beyond 32
bits that way, e.g. the parameter ids PyTorch before 0.4 kept in optimiser states (bearpaw/pytorch-pose's
released stacked hourglass checkpoints, 2017). Such a file is read with those opcodes rewritten as the binary
ones Python 3 writes (`_python2_ints_as_binary`), still with weights_only=True: nothing else changes.
"""
from __future__ import annotations

import io
import os
import pickle
import pickletools
from typing import Any

import torch

from ..fileio import atomic_write, finish_before_interrupt

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
    other = _other_format(path)
    if other is not None:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: it looks like {other}")
    try:
        return _load_weights_only(path)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file (it contains Python objects other than "
            f"tensors and plain values, which could run code when unpickled). Detail: {first}"
        ) from None
    except Exception as e:  # torch raises many types for a damaged file (RuntimeError, EOFError, IndexError ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: damaged or not a PyTorch file ({first})") from None


def _load_weights_only(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        with open(path, "rb") as f:
            rewritten = _python2_ints_as_binary(f.read())
        if rewritten is None:
            raise
        return torch.load(io.BytesIO(rewritten), map_location="cpu", weights_only=True)


# The first pickle of PyTorch's legacy (non-zip) format: torch.serialization's magic number.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
# The pickles a legacy file starts with: the magic number, the format version, the system's sizes, the object, the
# keys of its storages; the storages' bytes follow.
_LEGACY_PICKLES = 5


def _python2_ints_as_binary(data: bytes) -> bytes | None:
    """A legacy-format checkpoint `data` with every text INT opcode of its pickles rewritten as NEWTRUE / NEWFALSE
    (Python 2 protocol 0's booleans) or LONG1 (any other integer), the opcodes Python 3 writes for the same
    values; None when `data` is not in the legacy format or has no INT opcode. The pickles are only parsed
    (pickletools.genops), never run; the storages' bytes after them are kept as they are."""
    if not data.startswith(_LEGACY_MAGIC):
        return None
    stream = io.BytesIO(data)
    parts, copied, found = [], 0, False
    try:
        for _ in range(_LEGACY_PICKLES):
            for opcode, value, start in pickletools.genops(stream):
                if opcode.name != "INT":
                    continue
                found = True
                parts += [data[copied:start], _binary_int(value)]
                copied = stream.tell()     # genops has just read the opcode's argument
    except ValueError:                      # genops: not a pickle there (a damaged file)
        return None
    return b"".join(parts + [data[copied:]]) if found else None


def _binary_int(value: int | bool) -> bytes:
    if isinstance(value, bool):
        return pickle.NEWTRUE if value else pickle.NEWFALSE
    encoded = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    return pickle.LONG1 + bytes([len(encoded)]) + encoded


# What a file that torch.load cannot read looks like, by its first bytes: (prefix, description).
_MAGIC = (
    (b"\x89HDF", "an HDF5 file (Keras / TensorFlow weights?)"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\x1f\x8b", "a gzip archive: unpack it first"),
    (b"7z\xbc\xaf", "a 7-Zip archive: unpack it first"),
    (b"Rar!", "a RAR archive: unpack it first"),
    (b"version https://git-lfs", "a Git LFS pointer, not the file itself: fetch it with git lfs pull"),
)


def _other_format(path: str) -> str | None:
    """What the file looks like when it cannot be a PyTorch checkpoint (a zip archive, a pickle, or an old tar
    one), else None: so that an ONNX model, a web page saved under the weights' name or an archive is named,
    instead of a pickle error about Python objects."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"\x80")) or head[257:262] == b"ustar":
        return None
    for prefix, what in _MAGIC:
        if head.startswith(prefix):
            return what
    # ONNX: a protobuf ModelProto, ir_version (field 1, a small varint) first, then another field's tag.
    if path.lower().endswith(".onnx") or (head[:1] == b"\x08" and head[2:3] in (b"\x12", b"\x1a", b"\x22", b"\x2a", b"\x3a")):
        return "an ONNX model: it runs with the onnxruntime backend"
    if len(head) >= 10 and head[8:10] == b'{"':
        return "a safetensors file"
    try:
        text = head.decode("utf-8").lstrip().lower()
    except UnicodeDecodeError:
        return "a binary file of an unknown format"
    if text.startswith(("<!doctype html", "<html", "<?xml", "<")):
        return "a web page (a download that returned a page instead of the file?)"
    return "a text file"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`. Ctrl-C is held until the
    file is complete (torch's zip writer cannot be stopped half-way: it fails with an error of its own). A file
    that cannot be written (a full disk) raises fileio.WriteError naming `path`, not the zip writer's
    "unexpected pos"; `path` is left as it was."""
    with finish_before_interrupt(), atomic_write(path) as f:
        torch.save(obj, f)


def _listing(items: list[str], limit: int = _MAX_LISTED) -> str:
    """The first `limit` of `items`, comma-separated, and how many more there are (for error messages)."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
